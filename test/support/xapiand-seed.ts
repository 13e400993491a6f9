/** Payloads from Xapiand's backups page (the seed of issue 5), byte for byte. */

/** The body of the page's `POST /twitter/:restore?pretty` and `POST /new_twitter/:restore?pretty`. */
export const SEED_TWEETS = `[
  {
    "user": "Kronuz",
    "postDate": "2016-11-15T13:12:00",
    "message": "Trying out Xapiand, so far, so good... so what!",
    "_id": 1
  },
  {
    "user": "Kronuz",
    "postDate": "2016-10-15T10:31:18",
    "message": "Another tweet, will it be indexed?",
    "_id": 2
  }
]`;
