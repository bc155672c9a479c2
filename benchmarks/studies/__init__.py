"""The studies that chose the shipped defaults (docs/EVALUATION.md): `make eval`, `make eval-rerank`,
`make eval-confidence`."""
