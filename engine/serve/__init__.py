"""``wfm-intervals serve``: the vendors' own APIs (Kore.ai Contact Volume, Mindful callback
metrics) answered from the committed store."""
