"""Inbound texts: receive (store and handle), the spool, status callbacks."""
