"""Reporting from stored results only: the tables (``tables``, ``quality_tables``, ``reported``,
``costs``, ``variance``), the ``tables`` rule's entry (``build``, run as ``python -m evaluation.report``)
and the figures (``figures``, run as ``python -m evaluation.report.figures``)."""
