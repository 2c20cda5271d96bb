"""Coupon issuance (发券): campaigns over synced segments, with exact limits and states.

Modules: ``campaign`` (definition files), ``states`` (legal transitions), ``limits``
(the issue decision), ``clock`` (Asia/Shanghai days, injectable time), ``schema`` (the
``issuance`` migration stream), ``store`` (rows and transitions), ``service`` (the
:class:`~issuance.service.Issuer` API: issue, occupy, confirm, reverse, expire),
``batch`` (daily batch offers), ``targets`` (campaigns against segment definitions).
"""
