"""Datasets and synthetic sets: the prepared splits (``datasets``, the ``prepare`` rule's entry),
the ImageNet class lists beside them (``imagenet_subsets.yaml``) and the synthetic-set artifact
(``synsets``). Imports only ``evaluation.core``."""
