"""Evaluation protocols: their reference settings (``protocols`` + ``protocols.yaml``), the one
training loop (``training``), augmentations (``augment``), evaluation networks (``networks``,
``library_networks``) and the entry point of the ``evaluate`` and ``train_teacher`` rules (``train``)."""
