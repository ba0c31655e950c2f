"""Reports: tables and exports built from the database and the storage root."""
