"""The work behind the magics, one module per command (the magics only parse and route).

:mod:`~smglm.notebook.cmd.train` (``%%sm_train``, also the form's Launch),
:mod:`~smglm.notebook.cmd.jobs` (``%sm_jobs``, ``%sm_logs``, ``%sm_stop``, ``%sm_show``),
:mod:`~smglm.notebook.cmd.compare` (``%sm_compare``), :mod:`~smglm.notebook.cmd.config`
(``%sm_config``), :mod:`~smglm.notebook.cmd.explore` (``%sm_explore``) and
:mod:`~smglm.notebook.cmd.common` (resolving jobs, data and backends).
"""
