"""Co-MIPN: a text encoder of the BERT, RoBERTa or XLM-R family, visual prefix prompts (idea 1), dynamic similarity
matching (idea 2), token-wise multi-path fusion (idea 3), contrastive aggregation (idea 4), and a
BIO-constrained CRF over words. docs/model.md describes each part and what it measured.

The vision tower is not part of the module: features come from :class:`comipn_model.network.vision.FeatureCache`
through ``batch.visual``; only the dimensions of the vision side are read from open_clip's config (and
from the matching tower's config.json when dynamic matching reads its patches).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import nn

from comipn_model.data.batch import ModelBatch, VisualInputs
from comipn_model.network.config import CoMIPNConfig
from comipn_model.network.contrastive import ContrastiveAggregation
from comipn_model.network.crf import BIOCRF
from comipn_model.network.matching import DynamicMatching, token_image_relevance
from comipn_model.network.matching_tower import matching_tower_dim
from comipn_model.network.multipath import PATH_MATCHED, PATH_PROMPT, PATH_TEXT, make_gate
from comipn_model.network.prompts import VisualPrefixPrompts
from comipn_model.network.region_head import RegionHead, region_loss
from comipn_model.network.text_encoder import check_architecture, check_max_seq, encode, encoder_dims, \
    install_layer_masks, load_text_encoder, positions
from comipn_model.network.vision import vision_dims
from comipn_model.network.visual_norm import VisualNorm

logger = logging.getLogger(__name__)


@dataclass
class Encoded:
    """The encoder's side of a forward: fused states, the text-only path's [CLS], the path gates and
    dynamic matching's per-image relevance to the text (when it ran)."""

    states: torch.Tensor  # (B, T, D) fused
    text_cls: torch.Tensor  # (B, D) [CLS] of the text alone: never sees an image
    gates: torch.Tensor | None = None
    relevance: torch.Tensor | None = None  # (B, M)


@dataclass
class CoMIPNOutput:
    loss: torch.Tensor | None  # None when the batch has no labels
    emissions: torch.Tensor  # (B, W, C) per word
    crf_loss: torch.Tensor | None
    contrastive_loss: torch.Tensor | None  # None when off or fewer than 2 imaged examples
    gates: torch.Tensor | None = None  # (B, T, paths) token-wise path weights, when multi-path
    region_loss: torch.Tensor | None = None  # None without a region head, region targets or picture


def first_token(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B, D)``: each row's first real token ([CLS] / ``<s>``), at index 0 unless the row is left-padded."""
    first = attention_mask.long().argmax(dim=1)  # the first 1
    return states[torch.arange(states.shape[0], device=states.device), first]


class CoMIPN(nn.Module):
    def __init__(self, config: CoMIPNConfig, encoder: nn.Module | None = None, tokenizer=None):
        """Loads the text encoder named by ``config`` (or takes an already loaded ``encoder`` /
        ``tokenizer`` pair, e.g. to share one load between several models in tests)."""
        super().__init__()
        self.config = config
        if encoder is None:
            encoder, tokenizer = load_text_encoder(config.text_model, config.random_init)
        check_architecture(encoder, config.text_model)
        check_max_seq(encoder.config, config.max_seq, config.text_model)
        self.tokenizer = tokenizer
        layers, _, _ = encoder_dims(encoder)
        hidden = encoder.config.hidden_size
        self.paths = [PATH_TEXT]
        if config.use_prompt:
            self.paths.append(PATH_PROMPT)
        if config.use_dynamic_matching:
            self.paths.append(PATH_MATCHED)
        self.shared_encoder = not (config.separate_path_encoders and config.multi_path)
        # Paper-faithful option: every path starts from the same weights and trains its own copy.
        self.encoders = nn.ModuleDict({PATH_TEXT: encoder} if self.shared_encoder else
                                      {p: encoder if p == PATH_TEXT else copy.deepcopy(encoder)
                                       for p in self.paths})
        for enc in self.encoders.values():  # before any compiled forward (see install_layer_masks)
            install_layer_masks(enc)
        # The parts a text-only BERT-CRF has are made first, so that they draw the same random numbers
        # whichever switches are on: with every image masked, all switches on trains like text-only.
        self.dropout = nn.Dropout(config.dropout)
        self.emission = nn.Linear(hidden, len(config.labels))
        self.crf = BIOCRF(config.labels)
        self.vision_blocks = self.vision_dim = self.patch_dim = None
        if config.uses_images:
            self.vision_blocks, self.vision_dim, _ = vision_dims(config.clip_model)
            # Matching's patches: CLIP's last block, or the matching tower's last layer (its own width).
            self.patch_dim = matching_tower_dim(config.matching_tower) if config.tower_matching else self.vision_dim
        self.prompts = (VisualPrefixPrompts(self.vision_dim, self.vision_blocks, hidden, layers,
                                            config.prompt_len, config.dropout) if config.use_prompt else None)
        self.matching = (DynamicMatching(hidden, self.patch_dim, config.embed_dim, layers, config.prompt_len,
                                         config.dropout) if config.use_dynamic_matching else None)
        self.gate = make_gate(config.path_gate, hidden, self.paths) if config.multi_path else None
        # Buffers only (no random numbers drawn): fitted on the training images before training.
        self.visual_norm = (VisualNorm(self.vision_blocks, self.vision_dim, self.patch_dim)
                            if config.uses_images and config.visual_norm else None)
        # With dynamic matching on, the contrastive pool reuses its relevance of each image to the text.
        self.contrastive = (ContrastiveAggregation(hidden, self.vision_dim, config.embed_dim,
                                                   temperature=config.contrastive_temperature,
                                                   own_relevance=not config.use_dynamic_matching)
                            if config.use_contrastive else None)
        # Made last: the parts above draw the same random numbers with or without it.
        self.region_head = (RegionHead(hidden, self.patch_dim, config.embed_dim) if config.region_head else None)

    # ----------------------------------------------------------------------------------------- parts
    def encoder_for(self, path: str) -> nn.Module:
        return self.encoders[PATH_TEXT if self.shared_encoder else path]

    def _visual(self, batch: ModelBatch) -> VisualInputs | None:
        """The batch's images cut to the model's ``1 + aux_k``; None when no example has one."""
        visual = batch.visual
        if visual is None or not self.config.uses_images:
            return None
        m = self.config.num_images
        visual = VisualInputs(cls=visual.cls[:, :m], patches=visual.patches[:, :m], mask=visual.mask[:, :m].bool())
        if visual.cls.shape[-1] != self.vision_dim or visual.cls.shape[-2] != self.vision_blocks:
            raise ValueError(f"visual features of shape {tuple(visual.cls.shape)} do not match "
                             f"{self.config.clip_model} ({self.vision_blocks} blocks x {self.vision_dim}); "
                             f"were they cached with another CLIP model?")
        if visual.patches.shape[-1] != self.patch_dim:
            tower = self.config.matching_tower if self.config.tower_matching else self.config.clip_model
            raise ValueError(f"patch features of width {visual.patches.shape[-1]} do not match {tower} "
                             f"({self.patch_dim}); were they made by another tower?")
        # Eager mode skips the visual paths of an imageless batch; a compiled forward cannot ask without a
        # graph break and runs them masked, which gives the same states up to float rounding.
        if not torch.compiler.is_compiling() and not visual.mask.any():
            return None
        return visual if self.visual_norm is None else self.visual_norm(visual)

    def _encode(self, batch: ModelBatch, visual: VisualInputs | None) -> Encoded:
        ids, mask, types = batch.input_ids, batch.attention_mask, batch.token_type_ids
        if self.gate is None or visual is None:
            # No picture anywhere in the batch: every visual prefix would be masked, and a masked
            # prefix gives the text-only states (up to float rounding), so the visual paths are skipped.
            states = encode(self.encoder_for(PATH_TEXT), ids, mask, types)
            return Encoded(states=states, text_cls=first_token(states, mask))
        prefixes: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = {}  # stacked over layers
        relevance = None
        if self.prompts is not None:
            prefixes[PATH_PROMPT] = (*self.prompts(visual.cls, visual.mask), None)
        if self.matching is not None:
            # The matching reads the encoder's token embeddings (not the text path's output), so
            # that all paths can run as one encoder call.
            tokens = self.encoder_for(PATH_MATCHED).embeddings(
                input_ids=ids, token_type_ids=types, position_ids=positions(self.encoder_for(PATH_MATCHED), ids))
            states, prefix_mask, bias, relevance = self.matching(tokens, mask, visual.patches, visual.mask)
            prefixes[PATH_MATCHED] = (states, prefix_mask, bias)
        if self.shared_encoder:
            outputs = self._encode_paths_together(batch, prefixes)
        else:
            outputs = {PATH_TEXT: encode(self.encoder_for(PATH_TEXT), ids, mask, types)}
            for path, (states, prefix_mask, bias) in prefixes.items():
                outputs[path] = encode(self.encoder_for(path), ids, mask, types, states, prefix_mask, bias)
        fused, gates = self.gate(outputs)
        return Encoded(states=fused, text_cls=first_token(outputs[PATH_TEXT], mask), gates=gates,
                       relevance=relevance)

    def _encode_paths_together(self, batch: ModelBatch, prefixes) -> dict[str, torch.Tensor]:
        """All paths as one encoder call of batch ``paths x B`` (on CPU one large call costs far less
        than several small ones). The text path comes first with a fully masked prefix, whose keys are
        never computed; that gives the encoder's plain output up to float rounding. Paths without an
        attention bias get a zero one."""
        names = [PATH_TEXT, *prefixes]
        width = max(prefix_mask.shape[1] for _, prefix_mask, _ in prefixes.values())
        first_states, first_mask = next(iter(prefixes.values()))[:2]
        layers, rows = first_states.shape[:2]
        any_bias = any(bias is not None for _, _, bias in prefixes.values())
        masks = [first_mask.new_zeros(rows, width)]  # the text path's: all masked
        states_all, biases = [], []
        for states, prefix_mask, bias in prefixes.values():
            pad = width - prefix_mask.shape[1]
            masks.append(nn.functional.pad(prefix_mask, (0, pad), value=False) if pad else prefix_mask)
            states_all.append(nn.functional.pad(states, (0, 0, 0, pad)) if pad else states)  # (L, B, width, D)
            if any_bias:
                if bias is None:
                    bias = states.new_zeros(layers, rows, prefix_mask.shape[1], dtype=torch.float32)
                biases.append(nn.functional.pad(bias, (0, pad)) if pad else bias)
        # Every path's prefixes stacked: (L, (paths - 1) * B, width, D), one tensor for all layers.
        joined = torch.cat(states_all, dim=1) if len(states_all) > 1 else states_all[0]
        joined_bias = None
        if any_bias:
            text_bias = first_states.new_zeros(layers, rows, width, dtype=torch.float32)
            joined_bias = torch.cat([text_bias, *biases], dim=1)
        n = len(names)
        # The text path's prefix is masked by construction: no check (it would wait for the device).
        out = encode(self.encoder_for(PATH_TEXT), batch.input_ids.repeat(n, 1), batch.attention_mask.repeat(n, 1),
                     batch.token_type_ids.repeat(n, 1), joined, torch.cat(masks, dim=0), joined_bias,
                     check_masked=False)
        return dict(zip(names, out.chunk(n, dim=0)))

    # --------------------------------------------------------------------------------------- forward
    def _emissions(self, batch: ModelBatch) -> tuple[VisualInputs | None, Encoded, torch.Tensor, torch.Tensor]:
        """The images, the encoder's side, the per-word emissions and the per-word fused states ``(B, W, D)``."""
        visual = self._visual(batch)
        encoded = self._encode(batch, visual)
        states = encoded.states
        index = batch.word_starts.unsqueeze(-1).expand(-1, -1, states.shape[-1])
        words = states.gather(1, index)  # (B, W, D): each word's first sub-token
        # The head (and both losses, in forward) in fp32 even under bf16 autocast: CRF log-sums over the
        # sequence and InfoNCE logits scaled up to 100 lose too much in bf16's 8-bit mantissa.
        with torch.autocast(words.device.type, enabled=False):
            emissions = self.emission(self.dropout(words.float()))
        return visual, encoded, emissions, words

    def _region_logits(self, words: torch.Tensor, visual: VisualInputs) -> torch.Tensor:
        """The region head's ``(B, W, aux_k)`` crop logits, fp32."""
        with torch.autocast(words.device.type, enabled=False):
            return self.region_head(words.float(), visual.patches.float(), visual.mask)

    def forward(self, batch: ModelBatch) -> CoMIPNOutput:
        visual, encoded, emissions, words = self._emissions(batch)
        crf_loss = contrastive_loss = loss = regions = None
        with torch.autocast(emissions.device.type, enabled=False):
            if batch.labels is not None:
                crf_loss = self.crf.nll(emissions, batch.labels, batch.word_mask)
                loss = crf_loss
            weight = self.config.contrastive_weight
            if self.contrastive is not None and visual is not None:
                relevance = None if encoded.relevance is None else encoded.relevance.float()
                args = (encoded.text_cls.float(), visual.cls[:, :, -1].float(), visual.mask, relevance)
                if torch.compiler.is_compiling():
                    # No value read back, no data-dependent shape: the loss of every row, masked, and
                    # whether it counts (contrastive_loss is then a tensor even where it does not).
                    contrastive_loss, counts = self.contrastive.loss_on_all_rows(*args)
                    if loss is not None:
                        loss = torch.where(counts, (1 - weight) * crf_loss + weight * contrastive_loss, crf_loss)
                else:
                    contrastive_loss = self.contrastive(*args)
                    if loss is not None and contrastive_loss is not None:
                        loss = (1 - weight) * crf_loss + weight * contrastive_loss
            if self.region_head is not None and visual is not None and batch.region_targets is not None:
                logits = self._region_logits(words, visual)
                crops = logits.shape[-1]
                # Supervised: the data's mask, on a word of the batch and a crop that is there.
                mask = (batch.region_mask[..., :crops].bool() & batch.word_mask[..., None].bool()
                        & visual.mask[:, None, 1:].bool())
                regions = region_loss(logits, batch.region_targets[..., :crops], mask)
                if loss is not None:
                    loss = loss + self.config.region_weight * regions
        return CoMIPNOutput(loss=loss, emissions=emissions, crf_loss=crf_loss,
                            contrastive_loss=contrastive_loss, gates=encoded.gates, region_loss=regions)

    @torch.no_grad()
    def emissions(self, batch: ModelBatch) -> torch.Tensor:
        """The CRF's per-word label scores ``(B, W, C)``, fp32: what :meth:`decode` and the CRF's
        probabilities read (computed once for both)."""
        return self._emissions(batch)[2]

    @torch.no_grad()
    def decode(self, batch: ModelBatch, emissions: torch.Tensor | None = None) -> list[list[str]]:
        """BIO label strings per word; words cut off by ``max_seq`` (no sub-token) are ``O``."""
        if emissions is None:
            emissions = self._emissions(batch)[2]  # no losses: tagging needs none
        labels = self.config.labels
        paths = self.crf.viterbi(emissions, batch.word_mask)
        tags = []
        for path, count in zip(paths, batch.word_counts):
            row = [labels[i] for i in path][:count]
            tags.append(row + ["O"] * (count - len(row)))
        return tags

    @torch.no_grad()
    def word_image_relevance(self, batch: ModelBatch) -> torch.Tensor | None:
        """Each word's relevance to each image of the batch, ``(B, W, 1 + aux_k)`` in [0, 1], 0 for a missing
        image: with a region head, its probability that the crop holds the word's entity (image 0, the whole
        picture, 0: no candidate; a whole forward, which :meth:`emissions_and_relevance` shares with the
        emissions); else dynamic matching's relevance of the word's first sub-token's embedding, as the
        matching reads it. None when the model has no dynamic matching or the batch no image. Entities'
        regions are linked from it (:mod:`comipn_model.inference.regions`)."""
        if self.matching is None:
            return None
        if self.region_head is not None:
            return self.emissions_and_relevance(batch)[1]
        visual = self._visual(batch)
        if visual is None:
            return None
        encoder = self.encoder_for(PATH_MATCHED)
        tokens = encoder.embeddings(input_ids=batch.input_ids, token_type_ids=batch.token_type_ids,
                                    position_ids=positions(encoder, batch.input_ids))
        relevance = token_image_relevance(self.matching.text_proj(tokens), self.matching.patch_proj(visual.patches),
                                          visual.mask).float()
        index = batch.word_starts.unsqueeze(-1).expand(-1, -1, relevance.shape[-1])
        return relevance.gather(1, index)

    @torch.no_grad()
    def emissions_and_relevance(self, batch: ModelBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`emissions` and :meth:`word_image_relevance` of one batch; with a region head from one forward
        (the head reads the states the emissions are made of)."""
        if self.region_head is None:
            return self.emissions(batch), self.word_image_relevance(batch)
        visual, _, emissions, words = self._emissions(batch)
        if visual is None:
            return emissions, None
        return emissions, RegionHead.probabilities(self._region_logits(words, visual), visual.mask)

    # ------------------------------------------------------------------------------------ parameters
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Every trainable parameter exactly once: the text encoder(s), the CRF, and the new modules."""
        encoder_ids = {id(p) for p in self.encoders.parameters()}
        crf_ids = {id(p) for p in self.crf.parameters()}
        groups: dict[str, list[nn.Parameter]] = {"text_encoder": [], "crf": [], "new": []}
        for p in self.parameters():  # nn.Module.parameters() yields each shared tensor once
            if not p.requires_grad:
                continue
            key = "text_encoder" if id(p) in encoder_ids else "crf" if id(p) in crf_ids else "new"
            groups[key].append(p)
        return groups

    def parameter_counts(self) -> dict[str, int]:
        groups = self.param_groups()
        return {"total": sum(p.numel() for p in self.parameters()),
                "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
                **{name: sum(p.numel() for p in ps) for name, ps in groups.items()}}
