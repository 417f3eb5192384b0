"""Student training: SFT examples with mirror augmentation (:mod:`.data`), LoRA SFT with the mirror-symmetric
direction KL (:mod:`.sft`), programmatic hard negatives (:mod:`.negatives`) and PRM-weighted DPO (:mod:`.dpo`).

Submodules are imported on demand: :mod:`.data` and :mod:`.negatives` are light; :mod:`.sft` and :mod:`.dpo`
pull in torch, transformers, peft and TRL.
"""
