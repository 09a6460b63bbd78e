"""Size limits of rule input. Every request's work is bounded by these (docs/rules.md: Limits)."""

MAX_GROUPS = 20  # entries of one `any` list
MAX_CONDITIONS_PER_GROUP = 50  # entries of one `all` list
MAX_DEPTH = 6  # nesting of any/all/not; the top level is 1
MAX_CONDITIONS = 200  # conditions in the whole tree
MAX_ARRAY_ITEMS = 1000  # values of in/not_in/has_*, list_ids, campaign ids, isp values
MAX_STRING_LENGTH = 1000  # characters of a text value or array element
MAX_FIELD_NAME_LENGTH = 128  # characters of a field name
MAX_V1_FILTERS = 50  # filters of a v1 segment
MAX_SIMPLE_RULES = 50  # rules of a simple segment
MAX_SEGMENT_IDS = 20  # segment_ids of one `segment` condition
MAX_SEGMENT_CHAIN = 5  # segment references in a row: A in B in C ... (docs/rules.md)
MAX_DAYS = 36500  # within_days and days_window.days: 1 .. 100 years
MAX_RULES_BYTES = 256 * 1024  # JSON size of the rules; the HTTP body limit is larger
MAX_PERIODS_BACK = 3650  # in_calendar and calendar days_window: offset -3650 .. 0
MAX_ANNIVERSARY_DAYS = 366  # anniversary_within_days: 0 .. 366 (a year ahead, leap or not)
