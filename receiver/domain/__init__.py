"""Pure domain code: routing and incident decisions. Imports nothing from the I/O layers."""
