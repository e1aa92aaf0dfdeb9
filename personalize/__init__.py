"""The per-actor pipeline, actor bundles, generation, evaluation reports and the `talkface` CLI."""
