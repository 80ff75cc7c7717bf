"""The shapes demo: a seeded synthetic data set (:mod:`.shapes`), the end-to-end run that
trains and tests mmscope models on it through mmscope's tools (:mod:`.run`), and the
pictures and per-class tables of its results (:mod:`.results`).

It is a project beside the package, not part of it: ``projects/shapes_demo/demo.py``
(``make demo``) and ``generate_shapes.py`` are its command lines.
"""
