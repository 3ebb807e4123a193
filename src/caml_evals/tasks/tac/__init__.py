"""TAC: an agentic benchmark of whether a booking agent avoids animal-harming experiences."""
