"""kequn (客群): tags, segments, syncs and coupons for a consumer-credit lender."""

__version__ = "0.1.0"
