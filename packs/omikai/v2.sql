-- Omikai 2: the multi-tenant schema. account_id on every table, UUID keys derived from the
-- v1 key, legacy_ref naming the v1 record, ISO codes, money in minor units, real dates,
-- enums as checked text, foreign keys. Written in the subset PostgreSQL and SQLite share.
CREATE TABLE account (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    legacy_ref TEXT NOT NULL UNIQUE
);
CREATE TABLE customer (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    customer_number BIGINT NOT NULL,
    name TEXT NOT NULL,
    address_line1 TEXT,
    address_line2 TEXT,
    postcode TEXT,
    city TEXT,
    country TEXT CHECK (country IS NULL OR length(country) = 2),
    vat_number TEXT,
    email TEXT,
    phone TEXT,
    payment_terms TEXT NOT NULL CHECK (payment_terms IN ('net_10', 'net_14', 'net_30', 'net_60', 'cash', 'prepaid')),
    currency TEXT NOT NULL CHECK (currency IN ('NOK', 'SEK', 'DKK', 'EUR', 'USD', 'GBP')),
    credit_limit_minor BIGINT,
    active BOOLEAN NOT NULL,
    created_on DATE,
    note TEXT,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE contact (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    customer_id UUID NOT NULL REFERENCES customer (id),
    first_name TEXT,
    last_name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    is_primary BOOLEAN NOT NULL,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE app_user (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    login TEXT NOT NULL,
    full_name TEXT,
    email TEXT,
    role TEXT NOT NULL CHECK (role IN ('admin', 'sales', 'production', 'accounting')),
    status TEXT NOT NULL CHECK (status IN ('invited', 'disabled')),
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE supplier (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    supplier_number BIGINT NOT NULL,
    name TEXT NOT NULL,
    country TEXT CHECK (country IS NULL OR length(country) = 2),
    email TEXT,
    payment_terms TEXT CHECK (payment_terms IN ('net_10', 'net_14', 'net_30', 'net_60', 'cash', 'prepaid')),
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE material (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    code TEXT NOT NULL,
    description TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('paper', 'ink', 'plate')),
    grammage INTEGER,
    width_mm INTEGER,
    height_mm INTEGER,
    unit TEXT NOT NULL CHECK (unit IN ('kg', 'sheet', 'pcs')),
    price_minor BIGINT,
    supplier_id UUID REFERENCES supplier (id),
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE quote (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    customer_id UUID NOT NULL REFERENCES customer (id),
    contact_id UUID REFERENCES contact (id),
    quote_number BIGINT NOT NULL,
    title TEXT,
    quote_date DATE NOT NULL,
    valid_to DATE,
    status TEXT NOT NULL CHECK (status IN ('open', 'won', 'lost', 'expired')),
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE quote_line (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    quote_id UUID NOT NULL REFERENCES quote (id),
    line_number INTEGER NOT NULL,
    description TEXT,
    quantity BIGINT,
    unit_price_minor BIGINT,
    discount_bp INTEGER CHECK (discount_bp BETWEEN 0 AND 10000),
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE sales_order (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    customer_id UUID NOT NULL REFERENCES customer (id),
    quote_id UUID REFERENCES quote (id),
    order_number BIGINT NOT NULL,
    title TEXT,
    order_date DATE NOT NULL,
    due_date DATE,
    status TEXT NOT NULL CHECK (status IN ('registered', 'in_production', 'finished', 'delivered', 'invoiced', 'cancelled')),
    quantity BIGINT,
    pages INTEGER,
    format TEXT,
    colors_front INTEGER CHECK (colors_front BETWEEN 0 AND 8),
    colors_back INTEGER CHECK (colors_back BETWEEN 0 AND 8),
    price_minor BIGINT,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE order_edition (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    order_id UUID NOT NULL REFERENCES sales_order (id),
    edition_number INTEGER NOT NULL,
    name TEXT,
    quantity BIGINT,
    due_date DATE,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE order_signature (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    order_id UUID NOT NULL REFERENCES sales_order (id),
    signature_number INTEGER NOT NULL,
    pages INTEGER,
    colors_front INTEGER NOT NULL CHECK (colors_front BETWEEN 0 AND 8),
    colors_back INTEGER NOT NULL CHECK (colors_back BETWEEN 0 AND 8),
    plates INTEGER NOT NULL,
    CHECK (plates = colors_front + colors_back),
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE purchase_order (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    supplier_id UUID NOT NULL REFERENCES supplier (id),
    order_id UUID REFERENCES sales_order (id),
    po_number BIGINT NOT NULL,
    po_date DATE NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'ordered', 'received', 'cancelled')),
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE purchase_order_line (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    purchase_order_id UUID NOT NULL REFERENCES purchase_order (id),
    line_number INTEGER NOT NULL,
    material_id UUID REFERENCES material (id),
    quantity DOUBLE PRECISION,
    unit_price_minor BIGINT,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE shipment (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    order_id UUID NOT NULL REFERENCES sales_order (id),
    shipment_number BIGINT NOT NULL,
    carrier TEXT,
    address TEXT,
    ship_date DATE,
    parcels INTEGER,
    weight_grams BIGINT,
    tracking_number TEXT,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE invoice (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    customer_id UUID NOT NULL REFERENCES customer (id),
    order_id UUID REFERENCES sales_order (id),
    invoice_number BIGINT NOT NULL,
    invoice_date DATE NOT NULL,
    due_date DATE,
    currency TEXT NOT NULL CHECK (currency IN ('NOK', 'SEK', 'DKK', 'EUR', 'USD', 'GBP')),
    status TEXT NOT NULL CHECK (status IN ('draft', 'sent', 'paid', 'credited')),
    total_ex_vat_minor BIGINT NOT NULL,
    vat_minor BIGINT NOT NULL,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE invoice_line (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    invoice_id UUID NOT NULL REFERENCES invoice (id),
    line_number INTEGER NOT NULL,
    description TEXT,
    quantity DOUBLE PRECISION,
    unit_price_minor BIGINT,
    vat_rate_bp INTEGER NOT NULL CHECK (vat_rate_bp IN (0, 1200, 1500, 2500)),
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE document (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    customer_id UUID REFERENCES customer (id),
    order_id UUID REFERENCES sales_order (id),
    quote_id UUID REFERENCES quote (id),
    file_name TEXT NOT NULL,
    mime_type TEXT,
    content BYTEA NOT NULL,
    sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
    CHECK ((CASE WHEN customer_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN order_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN quote_id IS NULL THEN 0 ELSE 1 END) = 1),
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE webhook (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    url TEXT NOT NULL CHECK (url LIKE 'https://%'),
    event TEXT NOT NULL CHECK (event IN ('order.created', 'order.completed', 'invoice.sent')),
    active BOOLEAN NOT NULL,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE setting (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    UNIQUE (account_id, key),
    UNIQUE (account_id, legacy_ref)
);

-- Indexes on foreign keys: deleting or re-pointing a parent must not scan its child tables.
CREATE INDEX contact_customer ON contact (customer_id);
CREATE INDEX material_supplier ON material (supplier_id);
CREATE INDEX quote_customer ON quote (customer_id);
CREATE INDEX quote_contact ON quote (contact_id);
CREATE INDEX quote_line_quote ON quote_line (quote_id);
CREATE INDEX sales_order_customer ON sales_order (customer_id);
CREATE INDEX sales_order_quote ON sales_order (quote_id);
CREATE INDEX order_edition_order ON order_edition (order_id);
CREATE INDEX order_signature_order ON order_signature (order_id);
CREATE INDEX purchase_order_supplier ON purchase_order (supplier_id);
CREATE INDEX purchase_order_order ON purchase_order (order_id);
CREATE INDEX purchase_order_line_po ON purchase_order_line (purchase_order_id);
CREATE INDEX purchase_order_line_material ON purchase_order_line (material_id);
CREATE INDEX shipment_order ON shipment (order_id);
CREATE INDEX invoice_customer ON invoice (customer_id);
CREATE INDEX invoice_order ON invoice (order_id);
CREATE INDEX invoice_line_invoice ON invoice_line (invoice_id);
CREATE INDEX document_customer ON document (customer_id);
CREATE INDEX document_order ON document (order_id);
CREATE INDEX document_quote ON document (quote_id);
