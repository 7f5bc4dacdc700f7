"""A profile's configuration: schema validation with the registries' checks (``validate``) and the
reductions of ``smoke: true`` (``smoke`` + ``smoke.yaml``). Imports the method registry."""
