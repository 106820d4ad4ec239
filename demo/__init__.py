"""`clb-direct demo`: the whole system on one machine, a zero-downtime rolling update you can watch."""
