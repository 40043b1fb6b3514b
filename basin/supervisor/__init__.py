"""The trio supervisor: spawns, reaps and relays containers; serves the control FIFO."""
