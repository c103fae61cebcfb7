"""The Keras-level kit users put in their own code: regularizers, schedules, `regularize`, penalties, the
ledger, the epoch record (`records`: the one row format every engine writes), `Proximal`.

May import Keras and `reglab.validation` only: everything else in reglab builds on the kit, never the reverse."""
