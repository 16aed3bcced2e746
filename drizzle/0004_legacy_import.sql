ALTER TABLE "transactions" ADD COLUMN "legacy_id" text;--> statement-breakpoint
CREATE UNIQUE INDEX "transactions_legacy_id_idx" ON "transactions" USING btree ("legacy_id","user_id") WHERE "transactions"."legacy_id" is not null;--> statement-breakpoint
ALTER TABLE "transactions" ADD CONSTRAINT "transactions_legacy_id_format" CHECK ("transactions"."legacy_id" ~ '^[0-9a-f]{24}$');