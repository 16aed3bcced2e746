-- Keys that let the tables growing with users be distributed by user_id (docs/scaling.md).
-- Upgrades an existing database in place, in the migration's transaction. Locks and rewrites:
-- every ALTER TABLE and DROP INDEX takes an ACCESS EXCLUSIVE lock on its table until commit.
-- Only the UPDATE that backfills delivery_attempts.user_id rewrites rows (a new version of every
-- attempt row). Adding the nullable column is catalog-only; SET NOT NULL and the
-- new foreign key scan delivery_attempts; each new index or primary key reads its whole table.
ALTER TABLE "delivery_attempts" ADD COLUMN "user_id" text;--> statement-breakpoint
UPDATE "delivery_attempts" AS a SET "user_id" = d."user_id"
  FROM "deliveries" AS d WHERE d."id" = a."delivery_id";--> statement-breakpoint
ALTER TABLE "delivery_attempts" ALTER COLUMN "user_id" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "delivery_attempts" DROP CONSTRAINT "delivery_attempts_delivery_id_deliveries_id_fk";--> statement-breakpoint
CREATE UNIQUE INDEX "deliveries_user_consumer_event_idx" ON "deliveries" USING btree ("user_id","consumer","event_id");--> statement-breakpoint
DROP INDEX "deliveries_consumer_event_idx";--> statement-breakpoint
DROP INDEX "deliveries_position_idx";--> statement-breakpoint
ALTER TABLE "deliveries" DROP CONSTRAINT "deliveries_pkey";--> statement-breakpoint
ALTER TABLE "deliveries" ADD CONSTRAINT "deliveries_user_id_id_pk" PRIMARY KEY("user_id","id");--> statement-breakpoint
CREATE INDEX "deliveries_id_idx" ON "deliveries" USING btree ("id");--> statement-breakpoint
ALTER TABLE "delivery_attempts" DROP CONSTRAINT "delivery_attempts_pkey";--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD CONSTRAINT "delivery_attempts_user_id_id_pk" PRIMARY KEY("user_id","id");--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD CONSTRAINT "delivery_attempts_delivery_fk" FOREIGN KEY ("user_id","delivery_id") REFERENCES "public"."deliveries"("user_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "events_user_id_id_idx" ON "events" USING btree ("user_id","id");--> statement-breakpoint
DROP INDEX "events_id_idx";--> statement-breakpoint
CREATE INDEX "events_id_idx" ON "events" USING btree ("id");
