/** What the replaced Django service left behind, as the tests rebuild it. */

/** The table as Django's migrations of the replaced service created it. */
export const DJANGO_TABLE = `
  CREATE TABLE form_form (
    id serial NOT NULL PRIMARY KEY,
    created timestamp with time zone NOT NULL,
    data jsonb NOT NULL,
    sqs_message_id varchar(255) NULL UNIQUE
  )`;
