"""Warm model containers: the pool the worker sends Arrow batches to."""
