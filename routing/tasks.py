"""Celery tasks of the routing app: none so far, on purpose.

Publishing compiles a table of a few hundred bytes inside its request, and a batch of outcomes (at most 1,000)
is stored, aggregated and turned into examples inside its request too, so the reporting service learns at once
which rows were refused; drift is computed when it is read. Nothing here outlasts a request.
"""
