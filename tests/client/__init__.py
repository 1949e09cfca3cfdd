"""Tests of the client side: the client SDK, the catalog view, `modelbus results`."""
