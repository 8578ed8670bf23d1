"""Framework adapters: each turns a target into a `Trace`. Only the adapter a target needs is imported."""
