"""The typed configuration of a Co-MIPN network (saved with every run)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from comipn_prep.conll import bio_labels

PATH_GATES = ("softmax", "tanh", "sigmoid-softmax")  # comipn_model.network.multipath's fusions


@dataclass
class CoMIPNConfig:
    # Text encoder: a BERT, RoBERTa or XLM-R checkpoint (text_encoder.FAMILIES), by hub name or local folder.
    text_model: str = "bert-base-uncased"
    # Build the text encoder from its config with random weights (paper-size speed checks, no download).
    random_init: bool = False
    # Frozen CLIP vision tower (open_clip): model name and pretrained tag or local weights file;
    # None / "none" builds the architecture with random weights.
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = "openai"
    # Dynamic matching's patch tokens from a frozen DINO / DINOv2 ViT (transformers: Hub name or local folder)
    # instead of CLIP's; the prompts keep CLIP's class tokens. None: CLIP's patches.
    matching_tower: str | None = None
    prompt_len: int = 4  # prefix vectors per image per text layer (original: 12; docs/model.md says why 4)
    embed_dim: int = 256  # shared space of the contrastive aggregation
    aux_k: int = 3  # object crops used per tweet, 0..3
    use_prompt: bool = True  # idea 1: visual prefix prompts
    use_dynamic_matching: bool = True  # idea 2: dynamic similarity matching
    use_contrastive: bool = True  # idea 4: contrastive aggregation
    # Centre and scale the tower's features by the training images' statistics (comipn_model.network.visual_norm).
    visual_norm: bool = True
    separate_path_encoders: bool = False  # idea 3, paper-faithful: one encoder copy per path
    # Idea 3's fusion: "softmax" over the paths at every token (the paper's), or "tanh": text-only at the
    # start, each visual path opened token-wise by a zero-initialised tanh gate (comipn_model.network.multipath).
    # "sigmoid-softmax": the original code's (a shared score, sigmoid, softmax over the paths).
    path_gate: str = "softmax"
    contrastive_weight: float = 0.2  # lambda in (1 - lambda) * CRF NLL + lambda * InfoNCE
    contrastive_temperature: float = 0.07  # InfoNCE's learned temperature at the start (original: 0.179)
    # Weight of the region loss (comipn_model.network.region_head): each entity word's crop that holds its
    # entity, trained on gold boxes (GMNER's VOC files). 0: off, no region head (runs as before).
    region_weight: float = 0.0
    dropout: float = 0.1
    max_seq: int = 128  # sub-tokens per tweet, [CLS] and [SEP] included
    labels: list[str] = field(default_factory=bio_labels)

    def __post_init__(self):
        if not 0 <= self.aux_k <= 3:
            raise ValueError(f"aux_k must be 0..3, got {self.aux_k}")
        if self.path_gate not in PATH_GATES:
            raise ValueError(f"path_gate must be one of {', '.join(PATH_GATES)}, got {self.path_gate!r}")
        if not 0.01 <= self.contrastive_temperature <= 1:
            raise ValueError(f"contrastive_temperature must lie in [0.01, 1] (the range it is kept in), "
                             f"got {self.contrastive_temperature}")
        if not (isinstance(self.region_weight, (int, float)) and 0 <= self.region_weight < float("inf")):
            raise ValueError(f"region_weight must be a finite number of 0 or more, got {self.region_weight}")
        if isinstance(self.clip_pretrained, str) and self.clip_pretrained.lower() in ("", "none"):
            self.clip_pretrained = None
        if isinstance(self.matching_tower, str) and self.matching_tower.strip().lower() in ("", "none"):
            self.matching_tower = None

    @property
    def multi_path(self) -> bool:
        """Multi-path fusion is on whenever a visual path (prompts or matching) is."""
        return self.use_prompt or self.use_dynamic_matching

    @property
    def tower_matching(self) -> bool:
        """Dynamic matching reads the matching tower's patches (not CLIP's)."""
        return self.use_dynamic_matching and self.matching_tower is not None

    @property
    def region_head(self) -> bool:
        """The model has a region head: a region weight, dynamic matching (whose patches it reads) and crops."""
        return self.region_weight > 0 and self.use_dynamic_matching and self.aux_k > 0

    @property
    def uses_images(self) -> bool:
        return self.use_prompt or self.use_dynamic_matching or self.use_contrastive

    @property
    def num_images(self) -> int:
        """Images per tweet the model sees: the global image and up to aux_k crops."""
        return 1 + self.aux_k

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CoMIPNConfig":
        data = dict(checked_fields(cls, data))
        # Saved before the features were standardised: the model had no statistics, and loads as it was.
        data.setdefault("visual_norm", False)
        data.setdefault("path_gate", "softmax")  # saved before the choice existed: the softmax gate
        return cls(**data)


def checked_fields(cls, data: dict) -> dict:
    """``data`` unchanged when every key is a field of dataclass ``cls``; else a ValueError naming the rest
    (a config.json from another version should fail loudly, not half-load)."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
    return data
