# Shortcuts for everyday tasks. `make` (or `make help`) lists them.
# Most targets wrap npm scripts; see package.json for what each one runs.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Absolute path of the repository (the folder holding this Makefile), so targets also work as
# `make -C path/to/repo <target>`.
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

# --- SQLite database ----------------------------------------------------------------------------
# The file the server uses: DATABASE_URL from the environment or the command line, else from .env
# (read with Node's own .env parser, as the server does), else file:./data/chat.db. The `file:`
# prefix is dropped (`file:///abs/x.db` -> `/abs/x.db`); a relative path starts at the repo root.
ifeq ($(origin DATABASE_URL),undefined)
ifneq ($(wildcard $(ROOT)/.env),)
DATABASE_URL := $(shell node -e 'const v = require("node:util").parseEnv(require("node:fs").readFileSync(process.argv[1], "utf8")).DATABASE_URL; process.stdout.write((v || "").trim())' "$(ROOT)/.env" 2>/dev/null)
endif
endif
DATABASE_URL := $(or $(strip $(DATABASE_URL)),file:./data/chat.db)
DB_PATH_RAW := $(patsubst file:%,%,$(patsubst file://%,%,$(DATABASE_URL)))
DB_FILE := $(if $(filter /%,$(DB_PATH_RAW)),$(DB_PATH_RAW),$(abspath $(ROOT)/$(DB_PATH_RAW)))
# The sqlite3 command-line shell. When it is missing, db-tables and db-schema fall back to a
# small Node script using the project's better-sqlite3 package.
SQLITE3 ?= sqlite3

# Node fallbacks: read-only, path taken from $DB_FILE. Single-quoted in the shell, so they use
# double quotes only.
NODE_DB_OPEN := const Database = require("better-sqlite3"); const db = new Database(process.env.DB_FILE, { readonly: true, fileMustExist: true });
NODE_DB_TABLES := $(NODE_DB_OPEN) for (const row of db.prepare("SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE ? ORDER BY name").all("table", "sqlite_%")) console.log(row.name);
NODE_DB_SCHEMA := $(NODE_DB_OPEN) for (const row of db.prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE ? ORDER BY rowid").all("sqlite_%")) console.log(row.sql + ";");
# Shell snippet run before a Node fallback.
REQUIRE_BETTER_SQLITE3 = if [ ! -d "$(ROOT)/node_modules/better-sqlite3" ]; then \
	echo "Neither the sqlite3 shell nor node_modules/better-sqlite3 is available: install sqlite3 (e.g. apt-get install sqlite3) or run npm install." >&2; \
	exit 1; fi

# --- Docker -------------------------------------------------------------------------------------
IMAGE ?= llm-streaming-service:local
DOCKER_VOLUME ?= llm-streaming-service-data
DOCKER_PORT ?= 3000
# Pass .env to the container only when it exists.
DOCKER_ENV_FILE := $(if $(wildcard $(ROOT)/.env),--env-file "$(ROOT)/.env")

.PHONY: help dev build start test test-coverage typecheck db-exists db-shell db-tables db-schema \
	docker-build docker-run docker-cluster clean

help: ## List the targets
	@echo "Usage: make <target>"
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_-]+:.*## / { printf "  %-15s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

dev: ## Run the server from the sources, reloading on change (tsx watch)
	npm run dev

build: ## Generate the Prisma client and compile to dist/
	npm run build

start: ## Build, then run the compiled server
	npm start

test: ## Typecheck, then run the test suite
	npm test

test-coverage: ## Typecheck, then run the tests with a coverage report in coverage/
	npm run test:coverage

typecheck: ## Type-check sources and tests (generates the Prisma client first)
	npm run typecheck

# A guard for the db-* targets (no `## `, so not listed by help).
db-exists:
	@if [ ! -f "$(DB_FILE)" ]; then \
		echo "No database at $(DB_FILE) yet: start the service once to create it (e.g. make dev)." >&2; \
		exit 1; \
	fi

db-shell: db-exists ## Open the sqlite3 shell on the database (DATABASE_URL)
	@if ! command -v $(SQLITE3) >/dev/null 2>&1; then \
		echo "db-shell needs the sqlite3 command-line shell, which is not installed: install it (e.g. apt-get install sqlite3)." >&2; \
		exit 1; \
	fi; \
	$(SQLITE3) "$(DB_FILE)"

db-tables: db-exists ## List the tables of the database (DATABASE_URL)
	@if command -v $(SQLITE3) >/dev/null 2>&1; then \
		$(SQLITE3) -readonly "$(DB_FILE)" .tables; \
	else \
		$(REQUIRE_BETTER_SQLITE3); \
		cd "$(ROOT)" && DB_FILE="$(DB_FILE)" node -e '$(NODE_DB_TABLES)'; \
	fi

db-schema: db-exists ## Print the database schema (the SQL in sqlite_master)
	@if command -v $(SQLITE3) >/dev/null 2>&1; then \
		$(SQLITE3) -readonly "$(DB_FILE)" .schema; \
	else \
		$(REQUIRE_BETTER_SQLITE3); \
		cd "$(ROOT)" && DB_FILE="$(DB_FILE)" node -e '$(NODE_DB_SCHEMA)'; \
	fi

docker-build: ## Build the Docker image llm-streaming-service:local
	docker build -t $(IMAGE) "$(ROOT)"

# --init: a tiny init forwards Ctrl-C (SIGINT) to node, which as PID 1 would otherwise ignore it.
# PORT/HOST/DATABASE_URL are pinned to the image's values so a host-oriented .env cannot move
# the server off the published port or the database out of the volume.
docker-run: ## Run the image on port 3000 (with .env if present; data in a named volume)
	docker run --rm --init \
		-p $(DOCKER_PORT):3000 \
		$(DOCKER_ENV_FILE) \
		-e PORT=3000 -e HOST=0.0.0.0 -e DATABASE_URL=file:/app/data/chat.db \
		-v $(DOCKER_VOLUME):/app/data \
		$(IMAGE)

docker-cluster: ## Run two replicas behind nginx, with PostgreSQL and Redis, on port 3002 (docker compose profile cluster)
	cd "$(ROOT)" && docker compose --profile cluster up --build nginx

clean: ## Remove dist/, coverage/ and the generated Prisma clients (keeps data/)
	cd "$(ROOT)" && rm -rf dist coverage src/store/generated prisma/sqlite/schema.prisma prisma/postgresql/schema.prisma bench/tmp *.tsbuildinfo
