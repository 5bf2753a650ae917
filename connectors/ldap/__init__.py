"""LDAP and Active Directory: the client, the attribute mapping and the reconciliation plan."""
