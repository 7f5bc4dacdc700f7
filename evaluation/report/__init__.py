"""Reporting from stored results only: the tables (``tables``, ``quality_tables``, ``reported``,
``costs``, ``variance``), the ``tables`` rule's entry (``build``, run as ``python workflow/scripts/tables.py``)
and the figures (``figures``, run as ``python workflow/scripts/figures.py``)."""
