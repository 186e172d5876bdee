-- TPC-H as a v2 schema in the style of Omikai 2: one database for many accounts, account_id
-- on every table, UUID keys derived from the v1 key, legacy_ref naming the v1 record, money
-- in minor units, rates in basis points, real dates, codes as checked enums, foreign keys.
CREATE TABLE account (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    legacy_ref TEXT NOT NULL UNIQUE
);
CREATE TABLE region (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    region_number BIGINT NOT NULL,
    name TEXT NOT NULL,
    comment TEXT,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE nation (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    nation_number BIGINT NOT NULL,
    name TEXT NOT NULL,
    region_id UUID NOT NULL REFERENCES region (id),
    comment TEXT,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE supplier (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    supplier_number BIGINT NOT NULL,
    name TEXT NOT NULL,
    address TEXT,
    nation_id UUID NOT NULL REFERENCES nation (id),
    phone TEXT,
    balance_minor BIGINT NOT NULL,
    comment TEXT,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE part (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    part_number BIGINT NOT NULL,
    name TEXT NOT NULL,
    manufacturer TEXT NOT NULL,
    brand TEXT NOT NULL,
    part_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    container TEXT NOT NULL,
    retail_price_minor BIGINT NOT NULL,
    comment TEXT,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE part_supplier (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    part_id UUID NOT NULL REFERENCES part (id),
    supplier_id UUID NOT NULL REFERENCES supplier (id),
    available_quantity BIGINT NOT NULL,
    supply_cost_minor BIGINT NOT NULL,
    comment TEXT,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE customer (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    customer_number BIGINT NOT NULL,
    name TEXT NOT NULL,
    address TEXT,
    nation_id UUID NOT NULL REFERENCES nation (id),
    phone TEXT,
    balance_minor BIGINT NOT NULL,
    segment TEXT NOT NULL CHECK (segment IN ('automobile', 'building', 'furniture', 'household', 'machinery')),
    comment TEXT,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE sales_order (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    order_number BIGINT NOT NULL,
    customer_id UUID NOT NULL REFERENCES customer (id),
    status TEXT NOT NULL CHECK (status IN ('open', 'fulfilled', 'partial')),
    total_minor BIGINT NOT NULL,
    ordered_on DATE NOT NULL,
    priority TEXT NOT NULL CHECK (priority IN ('urgent', 'high', 'medium', 'not_specified', 'low')),
    clerk TEXT,
    ship_priority BIGINT NOT NULL,
    comment TEXT,
    UNIQUE (account_id, legacy_ref)
);
CREATE TABLE order_line (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES account (id),
    legacy_ref TEXT NOT NULL,
    order_id UUID NOT NULL REFERENCES sales_order (id),
    line_number BIGINT NOT NULL,
    part_id UUID NOT NULL REFERENCES part (id),
    supplier_id UUID NOT NULL REFERENCES supplier (id),
    quantity BIGINT NOT NULL,
    extended_price_minor BIGINT NOT NULL,
    discount_bp BIGINT NOT NULL,
    tax_bp BIGINT NOT NULL,
    return_flag TEXT NOT NULL CHECK (return_flag IN ('returned', 'accepted', 'none')),
    line_status TEXT NOT NULL CHECK (line_status IN ('open', 'fulfilled')),
    shipped_on DATE NOT NULL,
    committed_on DATE NOT NULL,
    received_on DATE NOT NULL,
    ship_instruction TEXT NOT NULL CHECK (ship_instruction IN ('deliver_in_person', 'collect_cod', 'none', 'take_back_return')),
    ship_mode TEXT NOT NULL CHECK (ship_mode IN ('air', 'reg_air', 'fob', 'mail', 'rail', 'ship', 'truck')),
    comment TEXT,
    UNIQUE (account_id, legacy_ref)
);
