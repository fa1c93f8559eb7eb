#!/usr/bin/env bash
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d): one role and one database
# per user of the server, so the framework and Connect cannot touch the registry's tables and the reverse.
# The passwords come from the environment (.env) and reach psql as variables (:'name' quotes them as literals),
# never spliced into the SQL text.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v sfm_password="$SFM_DB_PASSWORD" -v apicurio_password="$APICURIO_DB_PASSWORD" <<'SQL'
CREATE ROLE sfm LOGIN PASSWORD :'sfm_password';
CREATE DATABASE sfm OWNER sfm;
CREATE ROLE apicurio LOGIN PASSWORD :'apicurio_password';
CREATE DATABASE apicurio OWNER apicurio;
REVOKE ALL ON DATABASE sfm FROM PUBLIC;
REVOKE ALL ON DATABASE apicurio FROM PUBLIC;
SQL
