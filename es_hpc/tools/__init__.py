"""Tools beside the jobs: the builder of the embedded tiny model (make-tiny-model, make-random-model)."""
