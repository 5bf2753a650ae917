"""The LDAP / Active Directory sync's domain: reading the directory into a plan (read), what
holds a plan for an admin (safety), applying it (apply, people_import, memberships), the run's
record and its approval (runs, approvals), queueing syncs (schedule), and testing a
connector's settings (connection_check). Nothing here commits, holds a lock or starts a
thread: worker.directory_sync and worker.directory_approval run a sync end to end.
"""
