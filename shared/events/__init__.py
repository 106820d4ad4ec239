"""Wire-exact models for every trigger and callback clb-direct accepts or produces.

Handlers parse raw events into these models before calling a service in `shared/`. Foreign formats
(API gateway, timer, CLS, Kubernetes audit, CLB/Cloud Monitor callbacks) tolerate unknown fields
because their producers add fields over time; our own formats (the relay batch) forbid them so a
typo or version skew fails loudly.
"""

from __future__ import annotations
