"""Measurement and device checks (``tools/analysis_tools/`` are their command lines).

The benchmark (``tools/analysis_tools/benchmark.py``), one job per module:

* :mod:`~mmscope.benchmark.specs`: the ``--model`` spec language and building a spec's
  backbone (``mmscope_models()`` lists the archs of every registered family);
* :mod:`~mmscope.benchmark.measure`: one case measured in this process;
* :mod:`~mmscope.benchmark.worker`: one case in a fresh process
  (``python -m mmscope.benchmark.worker CASE_JSON``) and the parent's end of it;
* :mod:`~mmscope.benchmark.cases`: the case matrix, result rows and the ratios of
  paired rows;
* :mod:`~mmscope.benchmark.sweep`: running every case of a benchmark, one worker process
  each, with a progress line;
* :mod:`~mmscope.benchmark.report`: machine description, tables, JSON and CSV.

Also :mod:`~mmscope.benchmark.attention_profile` (``attention_profile.py``: every
attention call timed with both paths; it also holds the attention-call recorder,
``record_attention_calls``), :mod:`~mmscope.benchmark.autocast_profile` and
:mod:`~mmscope.benchmark.gpu_check` (the checks of ``gpu_check.py`` / ``gpu_check.sh``,
which hold the plans and start the benchmark). Importing this package imports nothing
else.
"""
