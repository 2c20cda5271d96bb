"""The project model: every definition file loaded, checked and typed (one loader).

:func:`project.loader.load_project` walks the definitions folder (``tags/``,
``segments/``, ``campaigns/``) and returns a :class:`project.model.Project`. Each kind
declares its fields (:mod:`project.fields`); one expression language and type checker
serves derived tags and rules (:mod:`project.expressions`). Pure: reads files only.
"""
