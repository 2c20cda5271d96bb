"""The Spark engine: the same compiled plan run on Apache Spark over the lake (DESIGN §10).

:mod:`spark_engine.session` starts and stops a session from the settings (``local[2]`` on
one machine, a master URL in production); :class:`spark_engine.engine.SparkEngine` runs the
plan's tag group queries, the wide SELECT and the segment queries, transpiled by sqlglot
(:mod:`plan.spark`), reading ``<lake>/raw`` and writing Parquet partitions replaced whole
(:mod:`kequn.lake`). pyspark is an optional extra (``pip install -e '.[spark]'``) and is
imported only when a session is started: importing this package loads no Spark.
"""
