"""The SCP statement extractor on real report language: a dev set of sentences per code.

Sentences marked PTB-XL are real PTB-XL reports (PhysioNet, CC BY 4.0; ecg_id given where
known), LUDB lines are from ludb.csv, MIMIC-style lines are the machine statements' wording, the
rest are the phrasing of PTB-XL's German device statements and English/Swedish reports.
"""

from __future__ import annotations

import json

import pytest

from ecgllm.text.extract import extract_scp_codes, extract_statements, parse_lead_list
from ecgllm.text.reports import english_report
from ecgllm.text.vocab import statements
from tests.conftest import REAL

PER_CODE = {
    "SR": ["sinusrhythmus lagetyp normal normales ekg", "sinus rhythm. normal ecg.", "sinusrytm vänster kammarhypertrofi",
           "Sinus rhythm", "normal sinus rhythm"],
    "SBRAD": ["sinusbradykardie lagetyp normal sonst normales ekg 4.46 unbestÄtigter bericht", "sinus bradycardia.",
              "Sinus bradycardia"],
    "STACH": ["sinustachykardie linkstyp", "sinus tachycardia. q waves in v2,3.", "Sinus tachycardia"],
    "SARRH": ["sinus arrhythmie verdacht auf p-sinistrocardiale lagetyp normal", "sinusarrhythmie", "sinus arrhythmia."],
    "AFIB": ["vorhofflimmern normokard", "atrial fibrillation with rapid ventricular response.", "Atrial fibrillation"],
    "AFLT": ["vorhofflattern", "atrial flutter with 2:1 a-v conduction", "Atrial flutter, typical"],
    "PACE": ["schrittmacher-ekg", "paced rhythm.", "Pacemaker presence, undefined"],
    "BIGU": ["premature ventricular contractions, bigeminy.", "ventrikulaerer bigeminus"],
    "1AVB": ["sinusrhythmus a-v block i lagetyp normal", "sinus rhythm. first degree av block.", "I degree av block",
             "sinus rhythm with 1st degree a-v block", "av-block i. grades"],
    "3AVB": ["Iii degree av-block", "complete heart block"],
    "LAFB": ["sinusrhythmus ueberdrehter linkstyp linksanteriorer hemiblock", "left anterior fascicular block.",
             "Left anterior hemiblock", "sinusrytm extrem vänster el-axel vänster anteriort hemiblock"],
    "LPFB": ["sinusrhythmus ueberdrehter rechtstyp linksposteriorer hemiblock", "left posterior fascicular block"],
    "IRBBB": ["sinusrhythmus lagetyp normal unvollständiger rechtsschenkelblock sonst normales ekg",
              "incomplete right bundle branch block.", "Incomplete right bundle branch block"],
    "CRBBB": ["sinusrhythmus ueberdrehter linkstyp vollständiger rechtsschenkelblock qrs(t) abnormal", "right bundle branch block.",
              "kompletter rechtsschenkelblock", "linksanteriorer hemiblock kompl. rsb"],
    "CLBBB": ["sinusrhythmus llt vollstaendiger linksschenkelblock st-hebung in v1-v3",
              "regelbunden rytm, inga p-våg funna extrem vänster el-axel vänstersidigt skänkelblock",
              "sinus rhythm. left bundle branch block, this is most commonly due to ischaemic heart disease."],
    "ILBBB": ["inkompletter linksschenkelblock", "Incomplete left bundle branch block"],
    "IVCD": ["Non-specific intravintricular conduction delay", "intraventricular conduction delay",
             "nonspecific intraventricular conduction disorder", "atrial fibrillation. non-specific intraventricular delay."],
    "ABQRS": ["sinusrhythmus qrs(t) abnormal septaler infarkt nicht auszuschliessen", "qrs(t) abnorm"],
    "QWAVE": ["sinus rhythm. tiny r waves in v2,3. q waves in i, avl, v4,5,6.", "pathologische q-zacken"],
    "LVOLT": ["low qrs voltages in the frontal and horizontal leads", "Low voltage", "niederspannung"],
    "HVOLT": ["high qrs voltage"],
    "LVH": ["sinusrytm vänster kammarhypertrofi", "voltages are high in chest leads suggesting lvh.",
            "linksherzhypertrophie", "Left ventricular hypertrophy", "sinusrhythmus lagetyp normal linkshypertrophie möglich",
            "st segments are depressed in i, avl, v4,5,6. this may be due to lv strain or ischaemia."],
    "VCLVH": ["sinusrhythmus lagetyp normal mässige amplitudenkriterien für linkshypertrophie",
              "voltage criteria for left ventricular hypertrophy", "left ventricular high voltage",
              "sinus rhythm. voltages are high in limb leads suggesting lvh.",
              "sinusrhythmus mÄssige amplitudenkriterien f#r linkshypertrophie"],
    "RVH": ["rechtsherzhypertrophie", "Right ventricular hypertrophy"],
    "SEHYP": ["septale hypertrophie"],
    "LAO/LAE": ["sinus rhythm. possible left atrial enlargement. otherwise normal ecg.", "Left atrial hypertrophy",
                "possible left atrial abnormality", "p-mitrale"],
    "RAO/RAE": ["sinus rhythm. probable right atrial enlargement.", "Right atrial overload", "p-dextrocardiale"],
    "IMI": ["sinusrhythmus linkstyp qrs(t) abnormal inferiorer infarkt alter unbest.",
            "sinus rhythm. possible old inferior infarct.",
            "consistent with early inferior myocardial infarction.", "Scar formation: inferior wall",
            "inferior infarct - age undetermined"],
    "ILMI": ["inferolateraler infarkt wahrscheinlich alt", "inferolateral myocardial infarction"],
    "IPLMI": ["sinus rhythm. acute inferolateral infarct with true posterior involvement."],
    "ASMI": ["sinusrhythmus qrs(t) abnormal septaler infarkt nicht auszuschliessen",
             "periphere niederspannung qrs(t) abnormal anteroseptaler infarkt wahrscheinlich alt",
             "sinus rhythm. qs complexes in v2", "poor r wave progression", "fehlende r-progression",
             "Stemi: septal", "sinusrhythmus verdacht auf p-sinistrocardiale lagetyp normal qrs(t) abnorm    anteriorer "
             "infarkt     alter unbest.", "sinusrytm gammal anterior infarkt", "schlechte r-progression"],
    "AMI": ["anterior myocardial infarction", "Stemi: anterior wall", "old anterior infarct"],
    "ALMI": ["consistent with recent anterior and lateral myocardial infarction", "anterolateraler infarkt"],
    "LMI": ["lateral myocardial infarction", "Stemi: lateral wall"],
    "PMI": ["Scar formation: posterior wall", "true posterior infarction"],
    "ISCAL": ["anterolaterale ischämie", "ischemic in anterolateral leads"],
    "ISCIL": ["inferolaterale ischÄmie", "ischemic in inferolateral leads"],
    "ISCAN": ["anteriore ischämie", "Ischemia: apical"],
    "ISCLA": ["laterale ischämie", "Ischemia: lateral wall"],
    "ISCIN": ["inferiore ischämie", "Ischemia: inferior wall"],
    "ISC_": ["sinus rhythm. myocardial ischaemia cannot be excluded.", "Undefined ischemia/scar/supp.nstemi: lateral wall",
             "sinus rhythm. st segments are depressed in ii, iii, avf, v5,6. myocardial ischaemia is likely."],
    "STD_": ["st-senkung in i,ii,v3-4", "st segments are depressed in i, ii, avl, v4,5,6.",
             "minor non-specific st segment depression and t wave flattening in chest leads."],
    "STE_": ["st-hebung in v1-v4", "st segments are elevated in ii, iii, avf."],
    "NST_": ["sinusrytm ospecifik st-t förändring (höjning)", "non-specific st changes",
             "Non-specific repolarization abnormalities: inferior wall", "nonspecific st t abnormality"],
    "NDT": ["t waves are flat or slightly inverted in i, avl, v3-6.", "unspezifische t-veraenderungen pathologisches ekg",
            "sinus rhythm. non-specific t wave flattening in i, avl, v5,6."],
    "NT_": ["sinus rhythm. possible old inferior infarct. non-specific t wave flattening in v2,3,4."],
    "LOWT": ["t waves are low or flat in limb leads and v4,5,6.", "t waves are rather low."],
    "INVT": ["t waves are inverted in i, ii, avl, v2-6.", "t neg in v1-v5", "neg. t in ii, iii, avf, v4-6",
             "t wave inversion"],
    "LNGQT": ["prolonged qt interval", "long qt"],
    "DIG": ["digitalisveraenderung pathologisches ekg", "digitalis effect",
            "diffuse, unspez. repol.-stÖrung (digitalisierung bei tachykardem vhf fraglich ) pathologisches ekg"],
    "PVC": ["premature ventricular contraction(s). sinus rhythm. otherwise normal ecg.",
            "ventrikuläre extrasystole(n)", "Ventricular extrasystole, type: single pvc", "vpb's",
            "ventrikulÄr(a) extrasystoli(er) fÖrmaksflimmer/-fladder"],
    "PAC": ["premature atrial contraction(s). sinus rhythm.", "Atrial extrasystole, type: single pac",
            "supraventricular extrasystoles"],
    "PSVT": ["av-tachykardie (dd:supraventr. tachykardie) linkstyp"],
    "SVTAC": ["supraventricular tachycardia", "atrial tachycardia"],
    "NORM": ["sinusrhythmus lagetyp normal normales ekg", "sinus rhythm. normal ecg.", "sinus rhythm. no definite pathology.",
             "sinusrhythmus linkstyp sonst normales ekg 4.46 unbestätigter bericht", "sinusrhythmus lagetyp normal ekg normal"],
}  # fmt: skip


@pytest.mark.parametrize(("code", "text"), [(c, t) for c, ts in PER_CODE.items() for t in ts])
def test_every_code_in_real_phrasing(code, text):
    assert code in extract_scp_codes(text), (code, text, extract_scp_codes(text))


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        # PTB-XL 9600 (German device statement; its SVES and "t abnorm in ..." are not coded by PTB-XL)
        ("supraventrikuläre extrasystole(n) sinusrhythmus ueberdrehter linkstyp linksanteriorer hemiblock qrs(t) "
         "abnorm septaler infarkt nicht auszuschliessen inferiorer infarkt möglich t abnorm in hochlateralen "
         "ableitungen 4.46 unbestätigter bericht", {"SR", "LAFB", "ABQRS", "ASMI", "IMI"}),
        # PTB-XL 15985
        ("vorhofflimmern normokard stlt st-hebung in v4-6, ii, iii, avf st-senkung in ii, iii, avf, v4-6 neg. t in ii, "
         "iii, avf, v4-6 digitalisveraenderung pathologisches ekg", {"AFIB", "STE_", "STD_", "INVT", "DIG"}),
        # a normal ECG yields to a diagnostic statement (PTB-XL 2410: IRBBB, SR), not to a rhythm/form one (11331)
        ("sinusrhythmus lagetyp normal unvollständiger rechtsschenkelblock sonst normales ekg", {"SR", "IRBBB"}),
        ("sinusbradykardie lagetyp normal sonst normales ekg", {"SBRAD", "NORM"}),
        ("premature ventricular contraction(s). sinus rhythm. otherwise normal ecg.", {"PVC", "SR", "NORM"}),
        # a generic ischaemia statement stays ISC_ whatever leads the ST/T findings name (PTB-XL 2552)
        ("premature atrial contraction(s). sinus tachycardia. left ventricular hypertrophy. st segments are depressed "
         "in i, avl, v4,5,6. t waves are low in these leads. this may be due to lv strain or ischaemia.",
         {"PAC", "STACH", "LVH", "STD_", "LOWT", "ISC_"}),
        # "keine p-welle erkannt" is evidence of AF, not a negation of it (PTB-XL 4248)
        ("ventrikuläre extrasystole(n) unregelmässiger rhythmus, keine p-welle erkannt linkstyp vorhofflimmern "
         "tachykard ekg pathologisch", {"PVC", "AFIB"}),
        # a rhythm in the past is not the ECG's (PTB-XL 6329)
        ("premature ventricular contraction(s). sinus tachycardia. compared with tracing of 25:6,92, rhythm was "
         "previously atrial fibrillation.", {"PVC", "STACH"}),
        # an abnormality called a normal variant leaves "otherwise normal" standing (PTB-XL 10974: NORM, IRBBB)
        ("sinus rhythm. incomplete right bundle branch block, this is probably  a normal variant. otherwise normal ecg.",
         {"SR", "IRBBB", "NORM"}),
        # Swedish abbreviations (PTB-XL 2576: 1AVB, LAFB among its codes)
        ("av-block-i. lah genomgangen", {"1AVB", "LAFB"}),
        # ST/T findings the report itself calls normal are not coded, the ECG is NORM (PTB-XL 10973,
        # 17875, 17887, 17902); other findings beside such a verdict stay (17874: QWAVE, NORM) and a
        # diagnostic one outranks the NORM it implies
        ("sinus rhythm. non-specific t wave inversion in iii, avf, this may be normal.", {"SR", "NORM"}),
        ("sinus arrhythmia. incomplete right bundle branch block, this is probably a normal variant. st segments "
         "are elevated and t waves are tall in v4,5,6. this is probably normal for age. no definite pathology.",
         {"SARRH", "IRBBB", "NORM"}),
        ("llt sinusbradykardie neg t in iii,v1 wahrscheinlich normales ekg", {"SBRAD", "NORM"}),
        ("sinusrhythmus linkstyp st-hebung v1-3 t-veränderungen neg.lll, v2-4 wahrscheinlich normales ekg",
         {"SR", "NORM"}),
        ("sinus rhythm. q waves in ii, iii, avf are probably normal. no definite pathology.", {"SR", "QWAVE", "NORM"}),
        ("sinus rhythm. left ventricular hypertrophy. t waves are inverted in v5,6, this may be normal.",
         {"SR", "LVH"}),
        # a German device report of a sinus rhythm with only benign statements is a normal ECG, as
        # PTB-XL codes it (2553, 2579: NORM, SR; 16 of 22 real rows); atrial fibrillation is not
        ("sinusrhythmus verdacht auf p-sinistrocardiale lagetyp normal", {"SR", "NORM"}),
        ("ventrikuläre extrasystole(n) sinusrhythmus periphere niederspannung 4.46 unbestätigter bericht",
         {"PVC", "SR", "NORM"}),
        ("vorhofflimmern/-flattern lagetyp normal periphere niederspannung", {"AFIB"}),
        ("sinusrhythmus verdacht auf p-sinistrocardiale ueberdrehter linkstyp", {"SR"}),  # an axis deviation
        # things that are no statement
        ("abnormal ecg", set()),
        ("lagetyp normal", set()),
        ("sinus rhythm. pr interval is normal. no paced beats recorded.", {"SR"}),
        # a curator's edit names the codes
        ("sinus rhythm. premature ventricular contractions, bigeminy. otherwise no definite pathology. Edit: BIGU",
         {"SR", "PVC", "BIGU", "NORM"}),
    ],
)  # fmt: skip
def test_whole_reports(text, codes):
    assert extract_scp_codes(text) == codes


# The German device's statements that PTB-XL's cardiologists did not code (the counts are in
# ecgllm/text/phrases.py and come from tests/fixtures/real/ptbxl/reports_pages.jsonl)
PTBXL_UNCODED = [
    "periphere niederspannung", "low limb lead voltage.", "low qrs voltages in limb leads",
    "verdacht auf p-sinistrocardiale", "supraventrikuläre extrasystole(n)", "qt-verlÄngerung",
    "t abnorm in anterolateralen ableitungen", "unspezifisches abnormes t",
    "st & t abnorm, wahrscheinlich    anterolaterale ischÄmie oder linksbelastung",
    "st-t sänkning, såsom vid    anterolateral ischemi eller vänster belastning",
    "inferiorer myokardschaden mÖglich", "unspezifische intraventrikulÄre leitungsstÖrung",
    "unspezifischer intraventrikulÄrer block", "rechtsschenkelblock", "t-veränderungen in iii,v1,v3",
    "hochlateraler infarkt mÖglich", "hÖg lateral infarkt bÖr ÖvervÄgas",
]  # fmt: skip


@pytest.mark.parametrize("text", PTBXL_UNCODED)
def test_ptbxl_uncoded_device_statements(text):
    # (beside a coded statement: with a sinus rhythm alone, a device report is a normal ECG)
    report = f"sinusrhythmus linksanteriorer hemiblock {text} 4.46 unbestätigter bericht"
    assert extract_scp_codes(report) == {"SR", "LAFB"}


def test_uncoded_statements_take_only_their_territory_word():
    # the territory adjective goes with the uncoded statement, the statement before it stays
    assert extract_scp_codes("sinusrhythmus linksschenkelblock myokardschaden") == {"SR", "CLBBB"}
    assert extract_scp_codes("linkshypertrophie ischämie oder linksbelastung") == {"LVH", "ISC_"}


def test_negation_and_uncertainty():
    assert extract_scp_codes("kein vorhofflimmern. sinusbradykardie") == {"SBRAD"}
    assert extract_scp_codes(
        "sinus rhythm, no evidence of myocardial infarction in inferior leads."
    ) == {"SR"}
    assert extract_scp_codes("atrial fibrillation without st depression") == {"AFIB"}
    assert extract_scp_codes("no st elevation. st depression in v5") == {"STD_"}
    # German hedges follow the finding and are uncertainty, not negation
    by = {s.code: s.certainty for s in extract_statements(
        "septaler infarkt nicht auszuschliessen inferiorer infarkt wahrscheinlich alt")}  # fmt: skip
    assert by == {"ASMI": "possible", "IMI": "probable"}
    by = {
        s.code: s.certainty
        for s in extract_statements("possible old inferior infarct. left bundle branch block.")
    }
    assert by == {"IMI": "possible", "CLBBB": "certain"}
    text = "possible left ventricular hypertrophy. sinus rhythm."
    assert extract_scp_codes(text) == {
        "LVH",
        "SR",
    }  # uncertain statements count, as in PTB-XL's labels
    assert extract_scp_codes(text, min_certainty="probable") == {"SR"}


def test_lead_lists():
    st = {s.code: s.leads for s in extract_statements(
        "st segments are depressed in ii, iii, avf, v3-6. t waves are inverted in i, avl, v5,6. "
        "st-hebung in v1-v4. t waves are low in the inferior leads.")}  # fmt: skip
    assert st["STD_"] == ["II", "III", "aVF", "V3", "V4", "V5", "V6"]
    assert st["INVT"] == ["I", "aVL", "V5", "V6"]
    assert st["STE_"] == ["V1", "V2", "V3", "V4"]
    assert st["LOWT"] == ["II", "III", "aVF"]
    assert parse_lead_list("v4-6, ii, iii, avf") == ["II", "III", "aVF", "V4", "V5", "V6"]


def test_every_statement_description_round_trips():
    table = statements().table
    for code in table.index:
        assert extract_scp_codes(english_report({code: 100.0})) == {code}, code


def test_ptbxl_dev_reports_floor():
    """The shipped real PTB-XL reports with complete labels (20 of 26 chosen as likely mislabelled
    by ECG models): micro F1 at least 0.78 (bench/report_text.py prints it per code)."""
    from ecgllm.metrics.scores import code_counts, f1_from_counts

    rows = [
        json.loads(line) for line in (REAL / "ptbxl" / "reports.jsonl").read_text().splitlines()
    ]
    full = [r for r in rows if r["complete"]]
    s = f1_from_counts(
        code_counts(
            [extract_scp_codes(r["report"]) for r in full], [set(r["scp_codes"]) for r in full]
        )
    )
    assert len(full) == 26 and s["micro_f1"] >= 0.8 and s["micro_recall"] >= 0.8, s
    for r in rows:  # the other rows list only some of their codes: each must be found
        # (8198's "qt-verlaengerung" and 2017's plain "rechtsschenkelblock" are left uncoded)
        if not r["complete"] and r["ecg_id"] in (
            12899,
            2993,
            14219,
            1451,
            15985,
            41,
            16389,
            4647,
            595,
        ):
            assert set(r["scp_codes"]) <= extract_scp_codes(r["report"]), r


def test_ptbxl_report_pages_floor():
    """586 consecutive, unselected real PTB-XL rows (twelve runs of ptbxl_database.csv): micro F1
    and precision floors overall and on the test folds 9-10 (bench/report_text.py prints them)."""
    from ecgllm.metrics.scores import code_counts, f1_from_counts

    rows = [
        json.loads(line)
        for line in (REAL / "ptbxl" / "reports_pages.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 586 and len({r["ecg_id"] for r in rows}) == 586

    def score(rs):
        return f1_from_counts(code_counts([extract_scp_codes(r["report"]) for r in rs],
                                          [set(r["scp_codes"]) for r in rs]))  # fmt: skip

    every, test = score(rows), score([r for r in rows if r["strat_fold"] >= 9])
    assert every["micro_f1"] >= 0.78 and every["micro_precision"] >= 0.85, every
    assert test["micro_f1"] >= 0.76 and test["micro_precision"] >= 0.85, test


def test_label_ceiling_on_report_pages(capsys):
    """bench/report_text.py --ceiling on the 586 rows: where a text repeats, the extractor agrees
    with each row's codes better than the other rows with the same text do (their labels drift),
    and a reader learned from the rows' own labels (5-fold) does not beat the extractor; so the
    extractor's misses there are codes the text does not state (issue 16)."""
    import sys

    from tests.conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    from report_text import ceiling, ptbxl_sources

    name, rows = ptbxl_sources(None)[0]
    s = ceiling(name, rows)
    ours, labels = s["repeated texts, the extractor"], s["repeated texts, each row against the other rows' majority"]  # fmt: skip
    assert ours["micro_f1"] > labels["micro_f1"] > 0.8, s
    every = s["the extractor on every row"]["micro_f1"]
    assert every > max(v["micro_f1"] for k, v in s.items() if k.startswith("learned")), s
    assert "how far the labels let a reader of the text go" in capsys.readouterr().out
