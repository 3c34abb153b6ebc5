"""Real-time e-commerce event producer with deliberate faults and a ledger."""
