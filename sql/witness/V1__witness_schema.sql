-- Lockstep witness schema, version 1.
-- Installed on the witness database by WitnessStore.install, inside one transaction. One witness
-- serves many partnerships. Every change of a partnership record is a compare-and-set on its
-- epoch and state, so that among coordinators racing for a transition exactly one wins.

CREATE SCHEMA lockstep_witness;

CREATE TABLE lockstep_witness.partnership (
    name              text PRIMARY KEY,
    epoch             bigint      NOT NULL CHECK (epoch > 0),
    principal         text        NOT NULL,
    mirror            text        NOT NULL,
    state             text        NOT NULL CHECK (state IN ('SYNCHRONIZING', 'SYNCHRONIZED', 'SUSPENDED', 'DISCONNECTED', 'PENDING_FAILOVER')),
    mode              text        NOT NULL CHECK (mode IN ('HIGH_SAFETY_AUTOMATIC_FAILOVER', 'HIGH_SAFETY', 'HIGH_PERFORMANCE')),
    -- Witness-clock time at which a coordinator last reached the principal of this epoch: the
    -- exposed principal's lease, and what automatic failover and forced service wait out.
    principal_seen_at timestamptz,
    principal_seen_by text,
    -- While PENDING_FAILOVER: the state the role change ends in, so that any coordinator can
    -- complete a change whose author crashed.
    pending_target    text CHECK (pending_target IN ('SYNCHRONIZED', 'SUSPENDED', 'DISCONNECTED')),
    changed_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The epoch at which the mirror was found to need seeding rather than catch-up (the
    -- principal's journal limit was exceeded, or the mirror diverged); holds at that epoch only.
    mirror_needs_seed_epoch bigint,
    CHECK (principal <> mirror)
);

-- Every transition with its reason and actor.
CREATE TABLE lockstep_witness.history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partnership text        NOT NULL REFERENCES lockstep_witness.partnership (name),
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    old_epoch   bigint,
    new_epoch   bigint      NOT NULL,
    old_state   text,
    new_state   text        NOT NULL,
    principal   text        NOT NULL,
    mirror      text        NOT NULL,
    reason      text        NOT NULL,
    actor       text        NOT NULL
);
CREATE INDEX ON lockstep_witness.history (partnership, id);

-- Coordinators sharing a partnership, with their last heartbeat and the epoch they act in.
CREATE TABLE lockstep_witness.coordinator (
    partnership    text        NOT NULL REFERENCES lockstep_witness.partnership (name),
    coordinator_id text        NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    epoch_seen     bigint      NOT NULL,
    PRIMARY KEY (partnership, coordinator_id)
);

-- The record as coordinators read it, with how long the principal has gone unseen (witness clock).
CREATE FUNCTION lockstep_witness.read(p_name text,
    OUT epoch bigint, OUT principal text, OUT mirror text, OUT state text, OUT mode text, OUT principal_unseen_ms bigint,
    OUT pending_target text, OUT unchanged_ms bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT p.epoch, p.principal, p.mirror, p.state, p.mode,
           CASE WHEN p.principal_seen_at IS NULL THEN NULL
                ELSE floor(extract(epoch FROM clock_timestamp() - p.principal_seen_at) * 1000)::bigint END,
           p.pending_target, floor(extract(epoch FROM clock_timestamp() - p.changed_at) * 1000)::bigint
      INTO epoch, principal, mirror, state, mode, principal_unseen_ms, pending_target, unchanged_ms
      FROM lockstep_witness.partnership p WHERE p.name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lockstep: the witness has no partnership %', p_name USING ERRCODE = '42704';
    END IF;
END $$;

-- Creates a partnership at epoch 1 unless it exists. Returns whether this call created it.
CREATE FUNCTION lockstep_witness.create_partnership(p_name text, p_principal text, p_mirror text, p_state text,
                                                    p_mode text, p_actor text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    -- The principal counts as just seen: a promotion waits a full partner timeout from here (I5).
    INSERT INTO lockstep_witness.partnership (name, epoch, principal, mirror, state, mode, principal_seen_at, principal_seen_by)
    VALUES (p_name, 1, p_principal, p_mirror, p_state, p_mode, clock_timestamp(), p_actor)
    ON CONFLICT (name) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO lockstep_witness.history (partnership, new_epoch, new_state, principal, mirror, reason, actor)
    VALUES (p_name, 1, p_state, p_principal, p_mirror, 'partnership created', p_actor);
    RETURN true;
END $$;

-- Compare-and-set: moves the record from (expected epoch, expected state) to the new values and
-- records the transition; false when the record is no longer as expected. With
-- p_min_principal_unseen_ms set, it also requires that no coordinator reached the principal for
-- that long, checked in the same transaction as the change (I5).
CREATE FUNCTION lockstep_witness.transition(p_name text, p_expected_epoch bigint, p_expected_state text,
        p_epoch bigint, p_principal text, p_mirror text, p_state text,
        p_min_principal_unseen_ms bigint, p_reason text, p_actor text, p_pending_target text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    old lockstep_witness.partnership;
BEGIN
    SELECT * INTO old FROM lockstep_witness.partnership WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lockstep: the witness has no partnership %', p_name USING ERRCODE = '42704';
    END IF;
    IF old.epoch <> p_expected_epoch OR old.state <> p_expected_state THEN
        RETURN false;
    END IF;
    IF p_epoch < old.epoch OR (p_epoch = old.epoch AND (p_principal <> old.principal OR p_mirror <> old.mirror)) THEN
        RAISE EXCEPTION 'lockstep: partnership % is at epoch % with principal %; a change to epoch % with principal % would go back or swap roles without a new epoch',
            p_name, old.epoch, old.principal, p_epoch, p_principal USING ERRCODE = '22023';
    END IF;
    IF p_state = 'PENDING_FAILOVER' AND p_pending_target IS NULL THEN
        RAISE EXCEPTION 'lockstep: a role change of partnership % must name the state it ends in', p_name USING ERRCODE = '22023';
    END IF;
    IF p_min_principal_unseen_ms IS NOT NULL AND old.principal_seen_at IS NOT NULL
       AND clock_timestamp() - old.principal_seen_at < p_min_principal_unseen_ms * interval '1 millisecond' THEN
        RETURN false;
    END IF;
    UPDATE lockstep_witness.partnership
       SET epoch = p_epoch, principal = p_principal, mirror = p_mirror, state = p_state, changed_at = clock_timestamp(),
           pending_target = CASE WHEN p_state = 'PENDING_FAILOVER' THEN p_pending_target END,
           -- A mirror that reached SYNCHRONIZED was seeded (or needed no seed).
           mirror_needs_seed_epoch = CASE WHEN p_state = 'SYNCHRONIZED' THEN NULL ELSE mirror_needs_seed_epoch END,
           -- A new principal counts as just seen, so that the next promotion also waits a full
           -- partner timeout (I5).
           principal_seen_at = CASE WHEN p_epoch = old.epoch THEN principal_seen_at ELSE clock_timestamp() END,
           principal_seen_by = CASE WHEN p_epoch = old.epoch THEN principal_seen_by ELSE p_actor END
     WHERE name = p_name;
    INSERT INTO lockstep_witness.history (partnership, old_epoch, new_epoch, old_state, new_state, principal, mirror, reason, actor)
    VALUES (p_name, old.epoch, p_epoch, old.state, p_state, p_principal, p_mirror, p_reason, p_actor);
    RETURN true;
END $$;

-- A coordinator reached the principal of epoch p_epoch. False when the record has moved to
-- another epoch or a role change is under way: the coordinator's view is stale and it must
-- fence itself.
CREATE FUNCTION lockstep_witness.principal_seen(p_name text, p_epoch bigint, p_coordinator text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lockstep_witness.partnership SET principal_seen_at = clock_timestamp(), principal_seen_by = p_coordinator
     WHERE name = p_name AND epoch = p_epoch AND state <> 'PENDING_FAILOVER';
    RETURN FOUND;
END $$;

-- A coordinator's heartbeat: registers it on first call.
CREATE FUNCTION lockstep_witness.heartbeat(p_name text, p_coordinator text, p_epoch_seen bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lockstep_witness.coordinator (partnership, coordinator_id, epoch_seen)
    VALUES (p_name, p_coordinator, p_epoch_seen)
    ON CONFLICT (partnership, coordinator_id)
    DO UPDATE SET heartbeat_at = clock_timestamp(), epoch_seen = excluded.epoch_seen;
END $$;

-- A coordinator's whole heartbeat in one round trip: the heartbeat, the sighting of the principal
-- when it reached it (false back when refused: its view is stale), and the record as it now stands.
CREATE FUNCTION lockstep_witness.beat(p_name text, p_coordinator text, p_epoch bigint, p_principal_reached boolean,
    OUT lease_granted boolean, OUT epoch bigint, OUT principal text, OUT mirror text, OUT state text, OUT mode text,
    OUT principal_unseen_ms bigint, OUT pending_target text, OUT unchanged_ms bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lockstep_witness.heartbeat(p_name, p_coordinator, p_epoch);
    lease_granted := p_principal_reached AND lockstep_witness.principal_seen(p_name, p_epoch, p_coordinator);
    SELECT r.epoch, r.principal, r.mirror, r.state, r.mode, r.principal_unseen_ms, r.pending_target, r.unchanged_ms
      INTO epoch, principal, mirror, state, mode, principal_unseen_ms, pending_target, unchanged_ms
      FROM lockstep_witness.read(p_name) r;
END $$;

-- Records that the mirror of epoch p_epoch must be seeded, with the reason in the history.
-- False when the record is at another epoch.
CREATE FUNCTION lockstep_witness.mark_mirror_for_seeding(p_name text, p_epoch bigint, p_reason text, p_actor text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r lockstep_witness.partnership;
BEGIN
    UPDATE lockstep_witness.partnership SET mirror_needs_seed_epoch = p_epoch
     WHERE name = p_name AND epoch = p_epoch RETURNING * INTO r;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO lockstep_witness.history (partnership, old_epoch, new_epoch, old_state, new_state, principal, mirror, reason, actor)
    VALUES (p_name, r.epoch, r.epoch, r.state, r.state, r.principal, r.mirror, p_reason, p_actor);
    RETURN true;
END $$;

CREATE TABLE lockstep_witness.schema_version (
    version      int PRIMARY KEY,
    installed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO lockstep_witness.schema_version (version) VALUES (1);
