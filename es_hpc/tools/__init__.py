"""Tools beside the jobs: the builder of the embedded tiny model and of random models of each family
(make-tiny-model, make-random-model), and the export of a train run's checkpoint (export)."""
