//! Parser for apk's installed database (`/lib/apk/db/installed`). (Being written.)
