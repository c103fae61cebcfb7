"""The Keras-level kit: regularizers, schedules, `regularize`, penalties, the ledger, the epoch record, `Proximal`."""
