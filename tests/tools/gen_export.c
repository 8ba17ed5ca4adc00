/* Write a synthetic Rossum export for the large-export test and the parse
 * benchmark.
 *
 * The file follows the layout of tests/data/rossum_export_multi.xml (or
 * rossum_export_multi.csv): N annotations with a varying number of line
 * items each. The content depends only on the seed, and both formats draw
 * the same values in the same order, so one seed gives the same invoices
 * as XML and as CSV. After writing, the program prints the totals a parser
 * must reproduce, as shell-readable KEY=VALUE lines. The sum of
 * item_amount_total is exact: amounts are added as decimal text in base
 * 10^9 limbs, never as floating point.
 *
 * Usage: gen_export [options] OUTPUT (see usage() below). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound of --max-items, so one annotation fits in a fixed array. */
#define ITEMS_LIMIT 1000

/* Limbs of the exact sum in cents: base 10^9, so 4 limbs reach 10^36. */
#define LIMB_BASE 1000000000LL
#define LIMB_COUNT 4
#define LIMB_DIGITS 9

/* Amount text: sign, up to 18 integer digits, point, 2 decimals, NUL. */
#define AMOUNT_TEXT_MAX 32

enum format { FORMAT_XML, FORMAT_CSV };

struct options {
  enum format format;
  uint64_t seed;
  uint64_t annotations; /* used when size_bytes is 0 */
  uint64_t size_bytes;  /* stop once the file has reached this size */
  unsigned max_items;
  const char *output;
  const char *totals; /* NULL: print the totals to stdout */
};

/* Exact signed decimal sum in cents. Each limb accumulates signed parts
 * below 10^9, so 2^63 / 10^9 (about 9 * 10^9) additions fit before
 * decimal_format() normalises the carries. */
struct decimal {
  int64_t limbs[LIMB_COUNT];
};

struct line_item {
  char code[40];
  const char *description;
  char quantity[16];
  const char *uom;
  char unit_price[AMOUNT_TEXT_MAX];
  int rate;
  char total[AMOUNT_TEXT_MAX];
  int64_t total_cents; /* 0 when total has 17 or more integer digits */
  bool has_confidence;
  char confidence[24];
};

struct annotation {
  uint64_t id;
  const char *status;
  bool exported;
  bool automated;
  char arrived_at[48];
  char exported_at[48];
  char date_issue[16];
  char date_due[16];
  char document_id[24];
  char order_id[16];
  const char *currency;
  int rate;
  char amount_base[48];
  char amount_tax[AMOUNT_TEXT_MAX];
  char amount_total[48];
  size_t vendor;
  size_t customer;
  const char *notes;
  char confidence[24];
  const char *modifier; /* NULL: <modifier/> */
  bool has_metadata;
  size_t item_count;
  struct line_item items[ITEMS_LIMIT];
};

struct totals {
  uint64_t annotations;
  uint64_t line_items;
  uint64_t records; /* CSV data rows: one per item, one per empty annotation */
  struct decimal item_amount_total;
};

struct writer {
  FILE *file;
  uint64_t bytes;
  bool failed;
};

struct party {
  const char *name;
  const char *address;
  const char *vat_id;
  const char *iban;
  const char *bic;
};

/* Names and texts cover what the parsers must keep exactly: non-ASCII
 * UTF-8, XML special characters, CSV commas, quotes and line breaks. */
static const struct party vendors[] = {
    {"Bluefin Office Supplies B.V.",
     "Kanaalweg 88\n3526 KM Utrecht\nNetherlands", "NL000111222B01",
     "NL40BLFN0417285930", "BLFNNL2U"},
    {"Žluťoučký kůň s.r.o.",
     "Náměstí Míru 1234/56\n120 00 Praha 2\nČeská republika", "CZ00011122",
     "CZ6508000000192000145399", "GIBACZPX"},
    {"Greenleaf Catering Services",
     "Unit 4, Mill Lane\nReading RG1 2ZZ\nUnited Kingdom", "GB000123456",
     "GB66GRNL40123412345678", "GRNLGB2L"},
    {"Northwind Freight Forwarding",
     "1200 Example Terminal Rd\nNewark, NJ 07199\nUSA", "", "", ""},
    {"Smith & Sons <Tools> \"Ltd\"", "12 rue de l'Exemple\n69002 Lyon\nFrance",
     "FR00123456789", "FR7630006000011234567890189", "AGRIFRPP"},
};

static const struct party customers[] = {
    {"Acme Demo Ltd", "2 Example Court\nLondon EC1A 9ZZ", "GB000654321", "",
     ""},
    {"Müller & Söhne GmbH", "Hauptstraße 5\n10115 Berlin", "DE000111222", "",
     ""},
    {"Acme Demo s.r.o.", "Industrial Park 5\n602 00 Brno\nCzech Republic",
     "CZ12345678", "", ""},
};

static const char *const descriptions[] = {
    "Copy paper A4 80 g/m2, 500 sheets",
    "Toner cartridge black K220",
    "Šroubovák křížový PH2 – sada 6 ks, \"Profi\"",
    "Montážní práce (hod.)",
    "Ocean freight Rotterdam - Newark, 1x40HC",
    "Remboursement acompte « réservation salle »",
    "Sandwich platter (12 pcs)",
    "Cable 3 m <USB-C> & adapter",
    "Support hours; on-site\nincl. travel",
};

static const char *const units[] = {"pcs", "pack", "h", "", "person", "kg"};

static const char *const currencies[] = {"eur", "czk", "gbp", "usd"};

static const char *const notes[] = {
    "",
    "",
    "Annual subscription; 25 seats, billed yearly",
    "Dodávka dle obj. č. 42 – \"expres\" <urgentní> & 5 % sleva",
    "Line one\nLine two, with comma",
};

static const char *const modifiers[] = {"ap.clerk@example.com",
                                        "ap.lead@example.com", NULL};

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* splitmix64 (Steele, Lea and Flood, 2014): small, fast and the same on
 * every platform, unlike rand(). */
static uint64_t next_random(uint64_t *state)
{
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Return a value in [0, bound). For large bounds the modulo makes small
 * values slightly more likely, which does not matter for test data. */
static uint64_t random_below(uint64_t *state, uint64_t bound)
{
  return next_random(state) % bound;
}

/* Add an amount written as [-]DIGITS.DD to sum. The amounts are the
 * generator's own, so text of another shape is a bug and aborts. */
static void decimal_add_text(struct decimal *sum, const char *text)
{
  bool negative = text[0] == '-';
  const char *digits = negative ? text + 1 : text;
  const char *point = strchr(digits, '.');
  char cents[LIMB_COUNT * LIMB_DIGITS];

  size_t integer_len = point != NULL ? (size_t)(point - digits) : 0;
  if (integer_len == 0 || strlen(point) != 3 ||
      integer_len + 2 > sizeof(cents)) {
    fprintf(stderr, "gen_export: bug: invalid amount \"%s\"\n", text);
    abort();
  }
  memcpy(cents, digits, integer_len);
  memcpy(cents + integer_len, point + 1, 2);
  size_t len = integer_len + 2;

  /* Take 9-digit chunks from the right: chunk k is limb k. */
  for (size_t limb = 0; len > 0; limb++) {
    size_t start = len > LIMB_DIGITS ? len - LIMB_DIGITS : 0;
    int64_t part = 0;
    for (size_t i = start; i < len; i++)
      part = part * 10 + (cents[i] - '0');
    sum->limbs[limb] += negative ? -part : part;
    len = start;
  }
}

/* Propagate carries so that every limb but the top one is in
 * [0, LIMB_BASE). The top limb then carries the sign. */
static void decimal_normalise(int64_t *limbs)
{
  for (size_t i = 0; i + 1 < LIMB_COUNT; i++) {
    int64_t carry = limbs[i] / LIMB_BASE;
    limbs[i] -= carry * LIMB_BASE;
    if (limbs[i] < 0) {
      limbs[i] += LIMB_BASE;
      carry--;
    }
    limbs[i + 1] += carry;
  }
}

/* Write sum as [-]DIGITS.DD into out. */
static void decimal_format(const struct decimal *sum, char *out, size_t size)
{
  int64_t limbs[LIMB_COUNT];
  bool negative = false;

  memcpy(limbs, sum->limbs, sizeof(limbs));
  decimal_normalise(limbs);
  if (limbs[LIMB_COUNT - 1] < 0) {
    negative = true;
    for (size_t i = 0; i < LIMB_COUNT; i++)
      limbs[i] = -limbs[i];
    decimal_normalise(limbs);
  }

  /* Print the cents as one digit string, then insert the point. */
  char digits[LIMB_COUNT * LIMB_DIGITS + 1];
  size_t top = LIMB_COUNT - 1;
  while (top > 0 && limbs[top] == 0)
    top--;
  int used = snprintf(digits, sizeof(digits), "%" PRId64, limbs[top]);
  for (size_t i = top; i-- > 0;)
    used += snprintf(digits + used, sizeof(digits) - (size_t)used, "%09" PRId64,
                     limbs[i]);

  /* At least one integer digit: 5 cents is 0.05. */
  const char *padded = digits;
  char with_zeros[sizeof(digits) + 2];
  if (used < 3) {
    snprintf(with_zeros, sizeof(with_zeros), "%0*d%s", 3 - used, 0, digits);
    padded = with_zeros;
    used = 3;
  }
  snprintf(out, size, "%s%.*s.%s", negative ? "-" : "", used - 2, padded,
           padded + used - 2);
}

static void format_cents(char *out, size_t size, int64_t cents)
{
  uint64_t magnitude = cents < 0 ? (uint64_t)(-cents) : (uint64_t)cents;

  snprintf(out, size, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "",
           magnitude / 100, magnitude % 100);
}

/* Write a date in 2024 from a day number in [0, 366). */
static void format_date(char *out, size_t size, unsigned day)
{
  static const unsigned month_days[] = {31, 29, 31, 30, 31, 30,
                                        31, 31, 30, 31, 30, 31};
  unsigned month = 0;

  while (month < 11 && day >= month_days[month])
    day -= month_days[month++];
  snprintf(out, size, "2024-%02u-%02u", month + 1, day + 1);
}

static void format_confidence(char *out, size_t size, uint64_t *random)
{
  snprintf(out, size, "0.%016" PRIu64,
           random_below(random, UINT64_C(5000000000000000)) +
               UINT64_C(5000000000000000));
}

/* Draw one line item. Credit notes have negative amounts. When allow_huge
 * is set, about one item in 50 gets an amount of 17 or 18 integer digits
 * (19 or 20 significant digits), more than a double represents exactly. */
static void make_item(struct line_item *item, uint64_t *random, size_t index,
                      bool credit, bool allow_huge)
{
  item->description = descriptions[random_below(random, COUNT(descriptions))];
  item->uom = units[random_below(random, COUNT(units))];
  snprintf(item->code, sizeof(item->code), "ITM-%04" PRIu64 "-%zu",
           random_below(random, 10000), index + 1);
  item->has_confidence = random_below(random, 10) != 0;
  format_confidence(item->confidence, sizeof(item->confidence), random);

  if (allow_huge && random_below(random, 50) == 0) {
    uint64_t digits = 17 + random_below(random, 2);
    uint64_t low = 1;
    for (uint64_t i = 1; i < digits; i++)
      low *= 10;
    uint64_t units_part = low + random_below(random, 9 * low);
    unsigned cents = (unsigned)random_below(random, 100);
    snprintf(item->total, sizeof(item->total), "%s%" PRIu64 ".%02u",
             credit ? "-" : "", units_part, cents);
    snprintf(item->unit_price, sizeof(item->unit_price), "%s", item->total);
    snprintf(item->quantity, sizeof(item->quantity), "1");
    item->total_cents = 0;
    return;
  }

  int64_t sign = credit ? -1 : 1;
  int64_t quantity = 1 + (int64_t)random_below(random, 50);
  int64_t price = 1 + (int64_t)random_below(random, 100000);
  snprintf(item->quantity, sizeof(item->quantity), "%" PRId64, quantity);
  item->total_cents = sign * quantity * price;
  format_cents(item->unit_price, sizeof(item->unit_price), sign * price);
  format_cents(item->total, sizeof(item->total), item->total_cents);
}

static void make_header(struct annotation *a, uint64_t *random, uint64_t index)
{
  static const int rates[] = {0, 10, 20, 21};

  a->id = 5000001 + index;
  a->exported = random_below(random, 8) != 0;
  a->status = a->exported ? "exported" : "confirmed";
  a->automated = random_below(random, 5) == 0;
  a->modifier =
      a->automated ? NULL : modifiers[random_below(random, COUNT(modifiers))];
  a->has_metadata = random_below(random, 4) == 0;
  a->vendor = (size_t)random_below(random, COUNT(vendors));
  a->customer = (size_t)random_below(random, COUNT(customers));
  a->currency = currencies[random_below(random, COUNT(currencies))];
  a->notes = notes[random_below(random, COUNT(notes))];
  a->rate = rates[random_below(random, COUNT(rates))];
  format_confidence(a->confidence, sizeof(a->confidence), random);

  unsigned day = (unsigned)random_below(random, 330);
  format_date(a->date_issue, sizeof(a->date_issue), day);
  if (random_below(random, 6) == 0)
    a->date_due[0] = '\0';
  else
    format_date(a->date_due, sizeof(a->date_due), day + 30);
  snprintf(a->arrived_at, sizeof(a->arrived_at),
           "%sT%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%06" PRIu64 "Z",
           a->date_issue, random_below(random, 24), random_below(random, 60),
           random_below(random, 60), random_below(random, 1000000));
  snprintf(a->exported_at, sizeof(a->exported_at), "%.10sT23:59:59.000001Z",
           a->date_issue);
  snprintf(a->document_id, sizeof(a->document_id), "INV-2024-%06" PRIu64,
           index + 1);
  if (random_below(random, 3) == 0)
    a->order_id[0] = '\0';
  else
    snprintf(a->order_id, sizeof(a->order_id), "PO-%05" PRIu64,
             random_below(random, 100000));
}

/* Draw the items and set the header amounts from them. Huge amounts occur
 * only at tax rate 0, so the tax is never computed from a huge base. */
static void make_items(struct annotation *a, uint64_t *random,
                       unsigned max_items)
{
  bool credit = random_below(random, 20) == 0;
  struct decimal base = {{0}};
  int64_t small_base = 0; /* at most ITEMS_LIMIT * 50 * 100000 cents */

  a->item_count = (size_t)random_below(random, (uint64_t)max_items + 1);
  for (size_t i = 0; i < a->item_count; i++) {
    struct line_item *item = &a->items[i];
    make_item(item, random, i, credit, a->rate == 0);
    item->rate = a->rate;
    decimal_add_text(&base, item->total);
    small_base += item->total_cents;
  }

  decimal_format(&base, a->amount_base, sizeof(a->amount_base));
  if (a->rate == 0) {
    format_cents(a->amount_tax, sizeof(a->amount_tax), 0);
    snprintf(a->amount_total, sizeof(a->amount_total), "%s", a->amount_base);
    return;
  }
  /* Round half away from zero, as invoices do. */
  int64_t tax = small_base * a->rate;
  tax = (tax + (tax < 0 ? -50 : 50)) / 100;
  format_cents(a->amount_tax, sizeof(a->amount_tax), tax);
  format_cents(a->amount_total, sizeof(a->amount_total), small_base + tax);
}

static void emit(struct writer *out, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void emit(struct writer *out, const char *format, ...)
{
  va_list args;

  va_start(args, format);
  int written = vfprintf(out->file, format, args);
  va_end(args);
  if (written < 0)
    out->failed = true;
  else
    out->bytes += (uint64_t)written;
}

/* Write text with the XML special characters escaped. */
static void emit_xml_text(struct writer *out, const char *text)
{
  while (*text != '\0') {
    size_t plain = strcspn(text, "&<>\"");
    if (plain > 0) {
      if (fwrite(text, 1, plain, out->file) != plain)
        out->failed = true;
      out->bytes += plain;
      text += plain;
    }
    switch (*text) {
    case '&':
      emit(out, "&amp;");
      break;
    case '<':
      emit(out, "&lt;");
      break;
    case '>':
      emit(out, "&gt;");
      break;
    case '"':
      emit(out, "&quot;");
      break;
    default:
      return;
    }
    text++;
  }
}

/* Write one datapoint, indented by indent spaces. */
static void emit_datapoint(struct writer *out, int indent, const char *id,
                           const char *type, const char *confidence,
                           const char *value)
{
  emit(out, "%*s<datapoint ", indent, "");
  if (confidence != NULL && value[0] != '\0')
    emit(out, "rir_confidence=\"%s\" ", confidence);
  emit(out, "schema_id=\"%s\" type=\"%s\">", id, type);
  emit_xml_text(out, value);
  emit(out, "</datapoint>\n");
}

static void emit_xml_item(struct writer *out, const struct line_item *item)
{
  const char *confidence = item->has_confidence ? item->confidence : NULL;
  char rate[8];

  snprintf(rate, sizeof(rate), "%d", item->rate);
  emit(out, "            <tuple schema_id=\"line_item\">\n");
  emit_datapoint(out, 14, "item_code", "string", confidence, item->code);
  emit_datapoint(out, 14, "item_description", "string", confidence,
                 item->description);
  emit_datapoint(out, 14, "item_quantity", "number", confidence,
                 item->quantity);
  emit_datapoint(out, 14, "item_uom", "string", confidence, item->uom);
  emit_datapoint(out, 14, "item_amount_base", "number", confidence,
                 item->unit_price);
  emit_datapoint(out, 14, "item_rate", "number", confidence, rate);
  emit_datapoint(out, 14, "item_amount_total", "number", confidence,
                 item->total);
  emit(out, "            </tuple>\n");
}

static void emit_xml_head(struct writer *out, const struct annotation *a)
{
  const char *api = "https://acme-demo.rossum.app/api/v1";

  emit(out, "    <annotation url=\"%s/annotations/%" PRIu64 "\">\n", api,
       a->id);
  emit(out, "      <status>%s</status>\n", a->status);
  emit(out, "      <arrived_at>%s</arrived_at>\n", a->arrived_at);
  if (a->exported)
    emit(out, "      <exported_at>%s</exported_at>\n", a->exported_at);
  emit(out, "      <document url=\"%s/documents/%" PRIu64 "\">\n", api,
       a->id + 1000000);
  emit(out, "        <file_name>%s.pdf</file_name>\n", a->document_id);
  emit(out, "        <file>%s/documents/%" PRIu64 "/content</file>\n", api,
       a->id + 1000000);
  emit(out, "      </document>\n");
  if (a->modifier == NULL)
    emit(out, "      <modifier/>\n");
  else
    emit(out,
         "      <modifier url=\"%s/users/880011\">\n"
         "        <username>%s</username>\n      </modifier>\n",
         api, a->modifier);
  emit(out, "      <schema url=\"%s/schemas/330077\"></schema>\n", api);
  if (a->has_metadata)
    emit(out,
         "      <metadata>\n        <item key=\"erp_batch\">B-%" PRIu64
         "</item>\n      </metadata>\n",
         a->id);
  else
    emit(out, "      <metadata></metadata>\n");
}

static void emit_xml_amounts(struct writer *out, const struct annotation *a,
                             const char *confidence)
{
  emit(out, "        <section schema_id=\"amounts_section\">\n");
  emit_datapoint(out, 10, "amount_total_base", "number", confidence,
                 a->amount_base);
  emit_datapoint(out, 10, "amount_total_tax", "number", confidence,
                 a->amount_tax);
  emit_datapoint(out, 10, "amount_total", "number", confidence,
                 a->amount_total);
  emit_datapoint(out, 10, "currency", "enum", confidence, a->currency);
  if (a->item_count == 0) {
    emit(out,
         "          <multivalue schema_id=\"tax_details\"></multivalue>\n");
  } else {
    char rate[8];
    snprintf(rate, sizeof(rate), "%d", a->rate);
    emit(out, "          <multivalue schema_id=\"tax_details\">\n"
              "            <tuple schema_id=\"tax_detail\">\n");
    emit_datapoint(out, 14, "tax_detail_rate", "number", confidence, rate);
    emit_datapoint(out, 14, "tax_detail_base", "number", confidence,
                   a->amount_base);
    emit_datapoint(out, 14, "tax_detail_tax", "number", confidence,
                   a->amount_tax);
    emit(out, "            </tuple>\n          </multivalue>\n");
  }
  emit(out, "        </section>\n");
}

static void emit_xml_parties(struct writer *out, const struct annotation *a,
                             const char *confidence)
{
  const struct party *vendor = &vendors[a->vendor];
  const struct party *customer = &customers[a->customer];

  emit(out, "        <section schema_id=\"vendor_section\">\n");
  emit_datapoint(out, 10, "sender_name", "string", confidence, vendor->name);
  emit_datapoint(out, 10, "sender_address", "string", confidence,
                 vendor->address);
  emit_datapoint(out, 10, "sender_vat_id", "string", confidence,
                 vendor->vat_id);
  emit_datapoint(out, 10, "recipient_name", "string", confidence,
                 customer->name);
  emit_datapoint(out, 10, "recipient_address", "string", confidence,
                 customer->address);
  emit_datapoint(out, 10, "recipient_vat_id", "string", confidence,
                 customer->vat_id);
  emit(out, "        </section>\n");
  emit(out, "        <section schema_id=\"payment_info_section\">\n");
  emit_datapoint(out, 10, "iban", "string", confidence, vendor->iban);
  emit_datapoint(out, 10, "bic", "string", confidence, vendor->bic);
  emit_datapoint(out, 10, "var_sym", "string", confidence, "");
  emit(out, "        </section>\n");
}

static void emit_xml_annotation(struct writer *out, const struct annotation *a)
{
  /* The header datapoints share one confidence, which keeps the writer
   * short. The parser ignores the attribute anyway. */
  const char *confidence = a->confidence;

  emit_xml_head(out, a);
  emit(out, "      <content>\n"
            "        <section schema_id=\"basic_info_section\">\n");
  emit_datapoint(out, 10, "document_id", "string", confidence, a->document_id);
  emit_datapoint(out, 10, "document_type", "enum", confidence,
                 a->amount_total[0] == '-' ? "credit_note" : "tax_invoice");
  emit_datapoint(out, 10, "date_issue", "date", confidence, a->date_issue);
  emit_datapoint(out, 10, "date_due", "date", confidence, a->date_due);
  emit_datapoint(out, 10, "order_id", "string", confidence, a->order_id);
  emit(out, "        </section>\n");
  emit_xml_amounts(out, a, confidence);
  emit_xml_parties(out, a, confidence);

  emit(out, "        <section schema_id=\"line_items_section\">\n");
  if (a->item_count == 0) {
    emit(out, "          <multivalue schema_id=\"line_items\"></multivalue>\n");
  } else {
    emit(out, "          <multivalue schema_id=\"line_items\">\n");
    for (size_t i = 0; i < a->item_count; i++)
      emit_xml_item(out, &a->items[i]);
    emit(out, "          </multivalue>\n");
  }
  emit(out, "        </section>\n"
            "        <section schema_id=\"other_section\">\n");
  emit_datapoint(out, 10, "notes", "string", confidence, a->notes);
  emit(out, "        </section>\n      </content>\n");
  emit(out, "      <automated>%s</automated>\n",
       a->automated ? "true" : "false");
  emit(out, "      <modified_at>%s</modified_at>\n", a->arrived_at);
  emit(out, "    </annotation>\n");
}

/* Write one CSV field, quoted when it contains a comma, quote or line break. */
static void emit_csv_field(struct writer *out, const char *text, bool last)
{
  if (strpbrk(text, ",\"\r\n") == NULL) {
    emit(out, "%s", text);
  } else {
    emit(out, "\"");
    for (const char *c = text; *c != '\0'; c++) {
      if (*c == '"')
        emit(out, "\"\"");
      else
        emit(out, "%c", *c);
    }
    emit(out, "\"");
  }
  emit(out, last ? "\r\n" : ",");
}

static const char csv_header[] =
    "meta_file_name,Invoice number,Issue date,Due date,PO number,"
    "Vendor name,Vendor VAT number,Customer name,Total without tax,"
    "Tax total,Total amount,Currency,Notes,Item code,Description,Quantity,"
    "Unit,Unit price,Line total,meta_status,meta_url\r\n";

/* Write one CSV row: the annotation's header values, then item's values
 * or empty item cells when item is NULL. */
static void emit_csv_row(struct writer *out, const struct annotation *a,
                         const struct line_item *item)
{
  char file_name[40];
  char url[96];

  snprintf(file_name, sizeof(file_name), "%s.pdf", a->document_id);
  snprintf(url, sizeof(url),
           "https://acme-demo.rossum.app/api/v1/annotations/%" PRIu64, a->id);
  const char *header_values[] = {
      file_name,
      a->document_id,
      a->date_issue,
      a->date_due,
      a->order_id,
      vendors[a->vendor].name,
      vendors[a->vendor].vat_id,
      customers[a->customer].name,
      a->amount_base,
      a->amount_tax,
      a->amount_total,
      a->currency,
      a->notes,
  };
  for (size_t i = 0; i < COUNT(header_values); i++)
    emit_csv_field(out, header_values[i], false);

  emit_csv_field(out, item != NULL ? item->code : "", false);
  emit_csv_field(out, item != NULL ? item->description : "", false);
  emit_csv_field(out, item != NULL ? item->quantity : "", false);
  emit_csv_field(out, item != NULL ? item->uom : "", false);
  emit_csv_field(out, item != NULL ? item->unit_price : "", false);
  emit_csv_field(out, item != NULL ? item->total : "", false);
  emit_csv_field(out, a->status, false);
  emit_csv_field(out, url, true);
}

static void emit_csv_annotation(struct writer *out, const struct annotation *a)
{
  if (a->item_count == 0)
    emit_csv_row(out, a, NULL);
  for (size_t i = 0; i < a->item_count; i++)
    emit_csv_row(out, a, &a->items[i]);
}

static void add_totals(struct totals *totals, const struct annotation *a)
{
  totals->annotations++;
  totals->line_items += a->item_count;
  totals->records += a->item_count > 0 ? a->item_count : 1;
  for (size_t i = 0; i < a->item_count; i++)
    decimal_add_text(&totals->item_amount_total, a->items[i].total);
}

static bool want_more(const struct options *options, const struct writer *out,
                      uint64_t written)
{
  if (options->size_bytes > 0)
    return out->bytes < options->size_bytes;
  return written < options->annotations;
}

/* Write the whole export and collect its totals. */
static void write_export(const struct options *options, struct writer *out,
                         struct annotation *a, struct totals *totals)
{
  uint64_t random = options->seed;

  if (options->format == FORMAT_XML)
    emit(out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<export>\n"
              "  <results>\n");
  else
    emit(out, "%s", csv_header);

  while (want_more(options, out, totals->annotations) && !out->failed) {
    make_header(a, &random, totals->annotations);
    make_items(a, &random, options->max_items);
    if (options->format == FORMAT_XML)
      emit_xml_annotation(out, a);
    else
      emit_csv_annotation(out, a);
    add_totals(totals, a);
  }

  if (options->format == FORMAT_XML)
    emit(out,
         "  </results>\n  <pagination>\n    <next></next>\n"
         "    <previous></previous>\n    <total>%" PRIu64 "</total>\n"
         "    <total_pages>1</total_pages>\n  </pagination>\n</export>\n",
         totals->annotations);
}

static int write_totals(const struct options *options,
                        const struct totals *totals, uint64_t bytes)
{
  char sum[64];
  FILE *file = stdout;

  if (options->totals != NULL) {
    file = fopen(options->totals, "w");
    if (file == NULL) {
      fprintf(stderr, "gen_export: failed to create '%s': %s\n",
              options->totals, strerror(errno));
      return 1;
    }
  }
  decimal_format(&totals->item_amount_total, sum, sizeof(sum));
  fprintf(file,
          "annotations=%" PRIu64 "\nline_items=%" PRIu64 "\nrecords=%" PRIu64
          "\nitem_amount_total_sum=%s\nbytes=%" PRIu64 "\n",
          totals->annotations, totals->line_items, totals->records, sum, bytes);
  if (file != stdout && fclose(file) != 0) {
    fprintf(stderr, "gen_export: failed to write '%s': %s\n", options->totals,
            strerror(errno));
    return 1;
  }
  return 0;
}

static void usage(FILE *out)
{
  fprintf(out,
          "Usage: gen_export [options] OUTPUT\n"
          "Write a synthetic Rossum export to OUTPUT and print its totals.\n"
          "\n"
          "  --format xml|csv   export format (default xml)\n"
          "  --seed N           seed of the generator (default 1)\n"
          "  --annotations N    number of annotations (default 100)\n"
          "  --size-mb N        write annotations until the file reaches N "
          "MiB,\n"
          "                     instead of a fixed number\n"
          "  --max-items N      line items per annotation are drawn from "
          "0..N\n"
          "                     (default 20, at most %d)\n"
          "  --totals FILE      write the totals to FILE instead of stdout\n"
          "\n"
          "The totals are KEY=VALUE lines: annotations, line_items, records "
          "(CSV\n"
          "data rows), item_amount_total_sum (exact decimal) and bytes.\n",
          ITEMS_LIMIT);
}

/* Parse a decimal number option into *value. */
static bool parse_number(const char *name, const char *text, uint64_t max,
                         uint64_t *value)
{
  char *end = NULL;

  errno = 0;
  unsigned long long parsed = strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' ||
      parsed > max) {
    fprintf(stderr,
            "gen_export: invalid value '%s' for --%s, expected a number "
            "from 0 to %" PRIu64 "\n",
            text, name, max);
    return false;
  }
  *value = parsed;
  return true;
}

static bool parse_option(struct options *options, int option, const char *name,
                         const char *value)
{
  uint64_t number = 0;

  switch (option) {
  case 'f':
    if (strcmp(value, "xml") == 0 || strcmp(value, "csv") == 0) {
      options->format = value[0] == 'x' ? FORMAT_XML : FORMAT_CSV;
      return true;
    }
    fprintf(stderr, "gen_export: invalid --format '%s', expected xml or csv\n",
            value);
    return false;
  case 's':
    return parse_number(name, value, UINT64_MAX, &options->seed);
  case 'a':
    return parse_number(name, value, UINT64_MAX, &options->annotations);
  case 'm':
    if (!parse_number(name, value, 1024 * 1024, &number))
      return false;
    options->size_bytes = number * 1024 * 1024;
    return true;
  case 'i':
    if (!parse_number(name, value, ITEMS_LIMIT, &number))
      return false;
    options->max_items = (unsigned)number;
    return true;
  case 't':
    options->totals = value;
    return true;
  }
  return false;
}

/* Return 0 when the command line is valid, 1 when it is not, and -1 after
 * --help. */
static int parse_options(int argc, char **argv, struct options *options)
{
  static const struct option long_options[] = {
      {"format", required_argument, NULL, 'f'},
      {"seed", required_argument, NULL, 's'},
      {"annotations", required_argument, NULL, 'a'},
      {"size-mb", required_argument, NULL, 'm'},
      {"max-items", required_argument, NULL, 'i'},
      {"totals", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int option;
  int index = 0;

  while ((option = getopt_long(argc, argv, "", long_options, &index)) != -1) {
    if (option == 'h') {
      usage(stdout);
      return -1;
    }
    if (option == '?' ||
        !parse_option(options, option, long_options[index].name, optarg)) {
      usage(stderr);
      return 1;
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "gen_export: expected one OUTPUT path\n");
    usage(stderr);
    return 1;
  }
  options->output = argv[optind];
  return 0;
}

int main(int argc, char **argv)
{
  struct options options = {
      .format = FORMAT_XML, .seed = 1, .annotations = 100, .max_items = 20};
  struct totals totals = {0};
  struct writer out = {0};
  struct annotation *annotation = NULL;
  int status = 1;

  int parsed = parse_options(argc, argv, &options);
  if (parsed != 0)
    return parsed < 0 ? 0 : 2;

  annotation = malloc(sizeof(*annotation));
  if (annotation == NULL) {
    fprintf(stderr, "gen_export: out of memory\n");
    goto done;
  }
  out.file = fopen(options.output, "wb");
  if (out.file == NULL) {
    fprintf(stderr, "gen_export: failed to create '%s': %s\n", options.output,
            strerror(errno));
    goto done;
  }

  write_export(&options, &out, annotation, &totals);
  FILE *file = out.file;
  out.file = NULL;
  if (fclose(file) != 0 || out.failed) {
    fprintf(stderr, "gen_export: failed to write '%s': %s\n", options.output,
            strerror(errno));
    goto done;
  }
  status = write_totals(&options, &totals, out.bytes);

done:
  if (out.file != NULL)
    fclose(out.file);
  free(annotation);
  return status;
}
