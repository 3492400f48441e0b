"""Configuration of EcgLlm: an LLM (any AutoModelForCausalLM) that reads ECG signals (built-in
1-D transformer encoder) and ECG images (any transformers vision tower) through projectors.

    config = EcgLlmConfig(text_config={"model_type": "llama", ...}, vision_config={"model_type":
                          "siglip_vision_model", ...}, ecg_config={"hidden_size": 128})
    config.save_pretrained(d); EcgLlmConfig.from_pretrained(d)   # nested configs round-trip
"""

from __future__ import annotations

from typing import Literal

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

STANDARD_12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


# each zoo encoder's own input (Hz, samples) as its authors prepare it
# (ecg_fm: one 5 s segment; a longer record is cut into as many whole segments as it holds)
ZOO_INPUT = {"st_mem": (250.0, 2250), "ecgfounder": (500.0, 5000), "merl_resnet": (500.0, 5000),
             "merl_vit": (500.0, 5000), "ecg_fm": (500.0, 2500), "heartlang": (100.0, 1000)}  # fmt: skip
# ECG-FM's convolutional feature extractor (fairseq-signals' default conv_feature_layers:
# (channels, kernel, stride) x 4, 16x down-sampling)
ECG_FM_CONV = ((256, 2, 2),) * 4
# ECGFounder's released 12-lead Net1D (PKUDigitalHealth/ECGFounder, finetune_model.py)
ECGFOUNDER_FILTERS = (64, 160, 160, 400, 400, 1024, 1024)
ECGFOUNDER_BLOCKS = (2, 2, 2, 3, 3, 4, 4)


class EcgEncoderConfig(PreTrainedConfig):
    """The built-in ECG encoder: a transformer over time patches of the 12-lead signal.

    n_samples / patch_size tokens (5000 / 50 = 100 for 10 s at 500 Hz), then average-pooled by
    `pool` (100 / 4 = 25 tokens). Every patch sees all leads; masked (missing) leads are zeroed
    and a learned embedding of the lead mask tells the encoder which ones are present. With
    `measurement_tokens` = K > 0, K more tokens embed the ECG's measurement vector (rate, RR
    irregularity, P waves, intervals, axis, per-lead amplitudes) through an MLP of their own and
    follow the pooled time tokens in the output. With `rhythm_tokens` = R > 0, R more tokens (last)
    embed only the rhythm measurements (`rhythm_features`: indices of rate, RR irregularity and P
    waves in the measurement vector; default ecgllm.signal.features.RHYTHM_INDEX), and the other
    measurement tokens no longer see those: the rhythm reaches the LLM on one narrow path. Off by
    default, as measured on the embedded default (issue 15): the stage-0 encoder head reads LUDB
    rhythm better through it (balanced accuracy 0.805 vs 0.791, sinus rhythm recall 0.66 vs 0.58)
    and the LLM's real findings AUC rose (0.82 vs 0.60), but the LLM read rhythm worse (simulated
    0.76 vs 0.87, LUDB sinus rhythm recall 0.35 vs 0.48, Challenge 0.35 vs 0.58): the other
    measurement tokens still carried the rhythm. With SFT's `data.augment: {measurement_swap: 1.0}`
    (ecgllm.data.augment) the LLM reads LUDB as the head does (sinus rhythm recall 0.65-0.69 in
    three seeds) but the Challenge records fall (0.39-0.44 vs 0.55-0.58; README). With
    `verdict_outputs` = N (the stage-0 head's output count), that head lives in the encoder and one
    last token embeds its verdict on the record (the head's outputs averaged over the rhythm tokens
    when there are some, else over the measurement tokens, through a fixed random projection);
    stage 0 trains encoder and head as without it and then installs the head
    (recipes/pretrain_ecg_encoder.py). Off by default.
    """

    model_type = "ecgllm_ecg_encoder"
    base_config_key = "ecg_config"

    n_leads: int = 12
    n_samples: int = 5000
    sampling_rate: float = 500.0
    patch_size: int = 50
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    dropout: float = 0.0
    pool: int = 1
    input_scale: float = 1.0  # multiply mV by this before the patch embedding
    pretrained_path: str | None = None  # local file of encoder weights (safetensors) to load
    # tokens made from the ECG's measurements (ecgllm.signal.features.measurement_vector, computed
    # by the processor): 0 = off; measurement_dim is that vector's length
    measurement_tokens: int = 0
    measurement_dim: int = 0
    rhythm_tokens: int = 0
    rhythm_features: list[int] | None = None
    # > 0: the stage-0 head (this many outputs: statements + intervals) lives in the encoder and
    # one more token, last, embeds its verdict on the record (averaged over the rhythm tokens when
    # there are some, else the measurement tokens)
    verdict_outputs: int = 0
    # builtin, or a published encoder re-implemented to load its released weights (ecg_zoo.py):
    # st_mem (ST-MEM's ViT; its input: zoo_fs Hz, the centre zoo_seq_len samples, patch_size 75),
    # ecgfounder (ECGFounder's Net1D; hidden_size = the last of zoo_filters), merl_resnet (MERL's
    # ResNet1d; hidden_size 512, or 2048 with bottleneck blocks), merl_vit (MERL's ViT; patch_size
    # 50, hidden_size / heads 192/3, 384/6, 512/8 or 768/12 for tiny/small/middle/base), ecg_fm
    # (ECG-FM's wav2vec 2.0 encoder; hidden_size 768, 12 layers, 12 heads, intermediate 3072),
    # heartlang (HeartLang's ST-ECGFormer over heartbeat "words"; 768, 12 layers, 8 heads of 64,
    # intermediate 1024)
    encoder_type: str = "builtin"
    zoo_fs: float | None = None  # None: the zoo encoder's own input rate and length (ZOO_INPUT)
    zoo_seq_len: int | None = None
    zoo_head_dim: int = 64  # attention head width of a zoo transformer (0: hidden / heads)
    # Net1D (ecgfounder): channels and blocks per stage (None: the released 12-lead model's),
    # the first layer's channels, the kernel width and the channels per convolution group
    zoo_filters: list[int] | None = None
    zoo_blocks: list[int] | None = None
    zoo_base_filters: int = 64
    zoo_kernel: int = 16
    zoo_groups_width: int = 16
    # merl_resnet (MERL's ResNet1d): zoo_blocks per stage ([2, 2, 2, 2] = ResNet18, [3, 4, 6, 3] =
    # ResNet34 or, with bottleneck blocks, ResNet50), and the tokens its feature map is averaged to
    zoo_block: str = "basic"
    zoo_tokens: int = 25  # merl_resnet, merl_vit, ecg_fm: their output averaged to this many tokens
    # ecg_fm: the convolutional feature extractor's (channels, kernel, stride) per layer (None:
    # ECG-FM's), the convolutional position embedding's kernel width and groups
    zoo_conv_layers: list[list[int]] | None = None
    zoo_conv_pos: int = 128
    zoo_conv_pos_groups: int = 16
    # heartlang: the sentence length in heartbeat words (padded or cut) and a word's samples
    zoo_words: int = 256
    zoo_word_len: int = 96

    @property
    def uses_measurements(self) -> bool:
        """Whether the encoder takes measurement vectors (measurement or rhythm tokens)."""
        return bool(self.measurement_tokens or self.rhythm_tokens)

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.encoder_type not in ("builtin", *ZOO_INPUT):
            raise ValueError(
                f"encoder_type must be builtin or one of {sorted(ZOO_INPUT)}, not {self.encoder_type!r}"
            )
        if self.encoder_type in ZOO_INPUT:
            fs, n = ZOO_INPUT[self.encoder_type]
            self.zoo_fs = float(self.zoo_fs) if self.zoo_fs is not None else fs
            self.zoo_seq_len = int(self.zoo_seq_len) if self.zoo_seq_len is not None else n
        if self.encoder_type == "merl_resnet":
            self.zoo_blocks = list(self.zoo_blocks or (2, 2, 2, 2))
            if self.zoo_block not in ("basic", "bottleneck") or len(self.zoo_blocks) != 4:
                raise ValueError(
                    f"merl_resnet: zoo_block must be basic or bottleneck and zoo_blocks 4 numbers, got "
                    f"{self.zoo_block!r} and {self.zoo_blocks}"
                )
            width = 512 * (4 if self.zoo_block == "bottleneck" else 1)
            if self.hidden_size != width:
                raise ValueError(
                    f"merl_resnet: hidden_size {self.hidden_size} must be {width} ({self.zoo_block} blocks)"
                )
        if self.encoder_type == "ecg_fm":
            self.zoo_conv_layers = [
                list(map(int, layer)) for layer in (self.zoo_conv_layers or ECG_FM_CONV)
            ]
            if any(len(layer) != 3 for layer in self.zoo_conv_layers):
                raise ValueError(
                    f"ecg_fm: zoo_conv_layers must be [channels, kernel, stride] per layer, got {self.zoo_conv_layers}"
                )
            if (
                self.hidden_size % self.num_attention_heads
                or self.hidden_size % self.zoo_conv_pos_groups
            ):
                raise ValueError(
                    f"ecg_fm: hidden_size {self.hidden_size} must divide by num_attention_heads "
                    f"{self.num_attention_heads} and zoo_conv_pos_groups {self.zoo_conv_pos_groups}"
                )
        if self.encoder_type == "merl_vit" and self.zoo_seq_len % self.patch_size:
            raise ValueError(
                f"merl_vit: zoo_seq_len {self.zoo_seq_len} must be a multiple of patch_size {self.patch_size}"
            )
        if self.encoder_type == "ecgfounder":
            self.zoo_filters = list(self.zoo_filters or ECGFOUNDER_FILTERS)
            self.zoo_blocks = list(self.zoo_blocks or ECGFOUNDER_BLOCKS)
            if len(self.zoo_blocks) != len(self.zoo_filters):
                raise ValueError(
                    f"ecgfounder: zoo_blocks {self.zoo_blocks} needs one entry per stage of zoo_filters "
                    f"{self.zoo_filters}"
                )
            if self.hidden_size != self.zoo_filters[-1]:
                raise ValueError(
                    f"ecgfounder: hidden_size {self.hidden_size} must be the last stage's channels "
                    f"(zoo_filters[-1] = {self.zoo_filters[-1]})"
                )
            bad = [f for f in self.zoo_filters if f % self.zoo_groups_width]
            if bad:
                raise ValueError(
                    f"ecgfounder: channels {bad} are not multiples of zoo_groups_width {self.zoo_groups_width}"
                )
        if self.uses_measurements and not self.measurement_dim:
            try:  # the vector's length is ecgllm's (this file also ships alone with exported models)
                from ecgllm.signal.features import MEASUREMENT_DIM

                self.measurement_dim = MEASUREMENT_DIM
            except ImportError:
                raise ValueError(
                    "measurement_tokens > 0 needs measurement_dim (the length of the measurement vector)"
                ) from None
        if self.rhythm_tokens and self.rhythm_features is None:
            try:
                from ecgllm.signal.features import RHYTHM_INDEX

                self.rhythm_features = list(RHYTHM_INDEX)
            except ImportError:
                raise ValueError(
                    "rhythm_tokens > 0 needs rhythm_features (their indices in the measurement vector)"
                ) from None

    @property
    def num_tokens(self) -> int:
        if self.encoder_type != "builtin":
            from .ecg_zoo import zoo_num_tokens

            return zoo_num_tokens(self)
        return (
            (self.n_samples // self.patch_size) // self.pool
            + self.measurement_tokens
            + self.rhythm_tokens
            + (1 if self.verdict_outputs else 0)
        )


class EcgLlmConfig(PreTrainedConfig):
    """Nested text/vision/ECG configs, projector types, placeholder token ids, tokens per input.

    `vision_config=None` builds a signal-only model, `ecg_config=None` an image-only one
    (`ecg_config={}` gives the default ECG encoder).
    """

    model_type = "ecgllm"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
        "vision_config": SubConfigSpec(
            config_class=AutoConfig, model_type="siglip_vision_model", optional=True
        ),
        "ecg_config": SubConfigSpec(config_class=EcgEncoderConfig, optional=True),
    }

    text_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    ecg_config: dict | PreTrainedConfig | None = None
    ecg_projector: Literal["linear", "mlp2x_gelu", "qformer"] = "mlp2x_gelu"
    ecg_query_tokens: int = 32  # tokens per ECG with the qformer projector (its learned queries)
    image_projector: Literal["linear", "mlp2x_gelu"] = "mlp2x_gelu"
    ecg_token_id: int = -1
    image_token_id: int = -1
    vision_feature_layer: int = -1
    image_pool: int = 1  # average-pool the vision tower's patch grid by this factor per side
    always_run_encoders: bool = True  # run every encoder each training step (ZeRO-3/FSDP need it)
    native_vision: bool = False  # text_config is a full VLM (Gemma 3, Qwen2.5-VL, Llama 3.2 Vision)
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.text_config is not None and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True

    @property
    def llm_hidden_size(self) -> int:
        return self.text_config.get_text_config().hidden_size

    @property
    def num_image_tokens(self) -> int:
        if self.vision_config is None:
            return 0
        side = self.vision_config.image_size // self.vision_config.patch_size
        return (side // self.image_pool) ** 2

    @property
    def num_ecg_tokens(self) -> int:
        if self.ecg_config is None:
            return 0
        return (
            self.ecg_query_tokens if self.ecg_projector == "qformer" else self.ecg_config.num_tokens
        )
