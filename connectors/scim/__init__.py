"""SCIM 2.0 (RFC 7643, RFC 7644): resources, filters, PATCH and errors, as the IdPs send them."""
