CREATE TABLE "job_state" (
	"name" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "scheduler_runs" (
	"job" text NOT NULL,
	"scheduled_at" timestamp (3) with time zone NOT NULL,
	"ran_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "scheduler_runs_job_scheduled_at_pk" PRIMARY KEY("job","scheduled_at")
);
--> statement-breakpoint
CREATE TABLE "user_daily_stats" (
	"user_id" text NOT NULL,
	"currency" text NOT NULL,
	"day" date NOT NULL,
	"transaction_count" integer NOT NULL,
	"credit_count" integer NOT NULL,
	"debit_count" integer NOT NULL,
	"credit_total_minor" numeric(38, 0) DEFAULT '0' NOT NULL,
	"debit_total_minor" numeric(38, 0) DEFAULT '0' NOT NULL,
	CONSTRAINT "user_daily_stats_user_id_currency_day_pk" PRIMARY KEY("user_id","currency","day"),
	CONSTRAINT "user_daily_stats_counts_valid" CHECK ("user_daily_stats"."transaction_count" = "user_daily_stats"."credit_count" + "user_daily_stats"."debit_count")
);
--> statement-breakpoint
CREATE TABLE "user_stats" (
	"user_id" text NOT NULL,
	"currency" text NOT NULL,
	"transaction_count" integer NOT NULL,
	"credit_count" integer NOT NULL,
	"debit_count" integer NOT NULL,
	"credit_total_minor" numeric(38, 0) DEFAULT '0' NOT NULL,
	"debit_total_minor" numeric(38, 0) DEFAULT '0' NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "user_stats_user_id_currency_pk" PRIMARY KEY("user_id","currency"),
	CONSTRAINT "user_stats_counts_valid" CHECK ("user_stats"."transaction_count" = "user_stats"."credit_count" + "user_stats"."debit_count")
);
--> statement-breakpoint
CREATE INDEX "user_daily_stats_busiest_idx" ON "user_daily_stats" USING btree ("user_id","currency","transaction_count" DESC NULLS FIRST,"day");--> statement-breakpoint
CREATE INDEX "transactions_user_currency_date_idx" ON "transactions" USING btree ("user_id","currency","transaction_date","transaction_type","amount_minor");