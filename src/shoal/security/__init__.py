"""Cluster security (DESIGN §7): join tokens now; the CA, certificates, RBAC and encryption
at rest come with the security work."""
