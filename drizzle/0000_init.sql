CREATE TABLE "transactions" (
	"user_id" text NOT NULL,
	"id" uuid NOT NULL,
	"full_name_ciphertext" text NOT NULL,
	"transaction_date" timestamp (3) with time zone NOT NULL,
	"amount_minor" bigint NOT NULL,
	"transaction_type" text NOT NULL,
	"currency" text NOT NULL,
	"description" text,
	"metadata" jsonb,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "transactions_user_id_id_pk" PRIMARY KEY("user_id","id"),
	CONSTRAINT "transactions_amount_minor_positive" CHECK ("transactions"."amount_minor" > 0),
	CONSTRAINT "transactions_type_valid" CHECK ("transactions"."transaction_type" in ('credit', 'debit')),
	CONSTRAINT "transactions_currency_format" CHECK ("transactions"."currency" ~ '^[A-Z]{3}$')
);
--> statement-breakpoint
CREATE TABLE "events" (
	"sequence" bigint GENERATED ALWAYS AS IDENTITY (sequence name "events_sequence_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"id" uuid NOT NULL,
	"user_id" text NOT NULL,
	"type" text NOT NULL,
	"transaction_id" uuid NOT NULL,
	"payload" jsonb NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "events_user_id_sequence_pk" PRIMARY KEY("user_id","sequence")
);
--> statement-breakpoint
CREATE TABLE "idempotency_keys" (
	"scope" text NOT NULL,
	"key" text NOT NULL,
	"request_hash" text NOT NULL,
	"response_status" integer NOT NULL,
	"response_headers" jsonb NOT NULL,
	"response_body" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp (3) with time zone NOT NULL,
	CONSTRAINT "idempotency_keys_scope_key_pk" PRIMARY KEY("scope","key")
);
--> statement-breakpoint
CREATE INDEX "transactions_id_idx" ON "transactions" USING btree ("id");--> statement-breakpoint
CREATE INDEX "transactions_history_idx" ON "transactions" USING btree ("user_id","transaction_date" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "events_sequence_idx" ON "events" USING btree ("sequence");--> statement-breakpoint
CREATE INDEX "events_transaction_id_idx" ON "events" USING btree ("transaction_id");--> statement-breakpoint
CREATE INDEX "idempotency_keys_expires_at_idx" ON "idempotency_keys" USING btree ("expires_at");