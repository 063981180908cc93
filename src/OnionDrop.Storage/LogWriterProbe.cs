using System.Reflection;
using LiteDB;

namespace OnionDrop.Storage;

/// <summary>
/// Waits for LiteDB's log writer. LiteDB 5.0's Commit hands the transaction's log pages to a writer thread of its
/// own (DiskWriterQueue) and returns without waiting for it (litedb-org/LiteDB#2818, fixed after 5.0.21, the last
/// release in the registry): a commit reported at once could still be lost to a power cut, or to a full disk the
/// writer then meets, in which case LiteDB forgets the transaction on reopening. The queue is not public, so it is
/// reached by reflection on LiteDB 5.0.20's fields; <see cref="Of"/> fails loudly if they are not there.
/// </summary>
internal sealed class LogWriterProbe
{
    private const BindingFlags Instance = BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public;
    private static readonly Assembly LiteDb = typeof(LiteDatabase).Assembly;
    private static readonly FieldInfo Engine = Field(typeof(LiteDatabase), "_engine");
    private static readonly FieldInfo Disk = Field(LiteDb.GetType("LiteDB.Engine.LiteEngine"), "_disk");
    private static readonly FieldInfo Queue = Field(LiteDb.GetType("LiteDB.Engine.DiskService"), "_queue");
    // The queue is a Lazy<DiskWriterQueue>, made at the first write.
    private static readonly PropertyInfo QueueMade = Queue.FieldType.GetProperty(nameof(Lazy<object>.IsValueCreated)) ?? throw Changed("the queue is not a Lazy");
    private static readonly PropertyInfo QueueValue = Queue.FieldType.GetProperty(nameof(Lazy<object>.Value)) ?? throw Changed("the queue is not a Lazy");
    private static readonly FieldInfo QueueIsEmpty = Field(LiteDb.GetType("LiteDB.Engine.DiskWriterQueue"), "_queueIsEmpty");
    private static readonly FieldInfo WriterFailure = Field(LiteDb.GetType("LiteDB.Engine.DiskWriterQueue"), "_exception");
    private static readonly FieldInfo State = Field(LiteDb.GetType("LiteDB.Engine.LiteEngine"), "_state");
    private static readonly FieldInfo EngineClosedField = Field(LiteDb.GetType("LiteDB.Engine.EngineState"), "Disposed");
    private static readonly FieldInfo EngineFailure = Field(LiteDb.GetType("LiteDB.Engine.EngineState"), "_exception");
    private static readonly FieldInfo Monitor = Field(LiteDb.GetType("LiteDB.Engine.LiteEngine"), "_monitor");
    private static readonly FieldInfo Transactions = Field(LiteDb.GetType("LiteDB.Engine.TransactionMonitor"), "_transactions");

    private readonly LiteDatabase _db;

    private LogWriterProbe(LiteDatabase db) => _db = db;

    /// <summary>Checks LiteDB's layout at once (a store opens only with a probe that works).</summary>
    public static LogWriterProbe Of(LiteDatabase db)
    {
        var probe = new LogWriterProbe(db);
        _ = probe.Parts();
        return probe;
    }

    /// <summary>
    /// The engine's state and its writer queue (a Lazy, made at the first write), looked up at each use: a rebuild
    /// (Compact) gives the engine new ones.
    /// </summary>
    private (object State, object LazyQueue) Parts()
    {
        var engine = Engine.GetValue(_db) ?? throw Changed("no engine");
        var disk = Disk.GetValue(engine) ?? throw Changed("no DiskService");
        return (State.GetValue(engine) ?? throw Changed("no engine state"), Queue.GetValue(disk) ?? throw Changed("no writer queue"));
    }

    /// <summary>
    /// Before a failed catalog is dropped: a transaction whose rollback failed with the engine stays in LiteDB's
    /// monitor, and once the engine is unreachable its finalizer runs on the GC's thread, throws ("discarded page must
    /// be writable", litedb-org/LiteDB#2561) and takes the whole process down, minutes later. Its finalizer is
    /// switched off instead: the engine it belonged to is gone anyway.
    /// </summary>
    public void ForgetLeakedTransactions()
    {
        var engine = Engine.GetValue(_db);
        if (engine is null || Monitor.GetValue(engine) is not { } monitor || Transactions.GetValue(monitor) is not System.Collections.IDictionary open) return;
        lock (open.SyncRoot) foreach (var transaction in open.Values) if (transaction is not null) GC.SuppressFinalize(transaction);
    }

    /// <summary>Whether the engine has shut itself down (after a failed write): it then refuses every call until reopened.</summary>
    public bool EngineClosed => EngineClosedField.GetValue(Parts().State) is true;

    /// <summary>
    /// Returns once the writer has written every log page handed to it so far (the last commit's included); throws
    /// what the writer failed with if it did. Not an fsync: the caller fsyncs the log file after this.
    /// </summary>
    public void WaitUntilWritten()
    {
        var (state, lazyQueue) = Parts();
        if (QueueMade.GetValue(lazyQueue) is false) return; // nothing written since the catalog opened
        var queue = QueueValue.GetValue(lazyQueue)!;
        var empty = (ManualResetEventSlim)QueueIsEmpty.GetValue(queue)!;
        // A writer that failed never signals empty again: look at its failure while waiting. And the first write
        // after an open runs on a thread of its own whose failure closes the engine and then waits, on that same
        // thread, for itself: it never records its failure in the queue, but the engine says it has closed.
        while (!empty.Wait(TimeSpan.FromMilliseconds(100)))
            ThrowIfFailed(queue, state);
        ThrowIfFailed(queue, state);
    }

    private static void ThrowIfFailed(object queue, object state)
    {
        var failure = WriterFailure.GetValue(queue) as Exception ?? EngineFailure.GetValue(state) as Exception;
        if (failure is null && EngineClosedField.GetValue(state) is true) failure = new ObjectDisposedException("LiteDB engine", "the catalog closed itself");
        if (failure is not null)
            throw failure as IOException ?? new IOException("the catalog's log writer failed: " + failure.Message, failure);
    }

    private static FieldInfo Field(Type? type, string name) =>
        type?.GetField(name, Instance) ?? throw Changed($"{type?.Name ?? "a type"}.{name} not found");

    private static InvalidOperationException Changed(string what) =>
        new($"LiteDB {LiteDb.GetName().Version} is not laid out as 5.0.20 ({what}): the catalog's durable commit (LogWriterProbe) must be updated with it");
}
