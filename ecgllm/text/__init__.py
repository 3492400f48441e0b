"""Text side: label vocabularies, report normalisation, templates."""
