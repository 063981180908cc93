using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Reliability.Tests;

/// <summary>What one committed submission turned out to be when the journalist opened it.</summary>
public sealed record OpenedCheck(string Id, string? Label, bool Identical, string? Problem);

/// <summary>
/// The journalist's side of a fault test: a fresh key pair for the daemon, and the checks made on the data
/// directory once the daemon is stopped (the store opened directly, as `oniondrop pull` does when the daemon
/// is not running): everything committed opens, with the journalist's key, to exactly what was uploaded.
/// </summary>
public sealed class Journalist : IDisposable
{
    public JournalistKey Key { get; } = JournalistKey.Generate();
    public string PublicKey => Key.PublicKey.ToString();

    /// <summary>Opens the store (which must open cleanly: LiteDB, lock, sweep) and lists what is committed.</summary>
    public static IReadOnlyList<SubmissionRecord> Committed(string dataDir)
    {
        using var store = SealedBlobStore.Open(dataDir);
        return store.ListCommitted();
    }

    /// <summary>
    /// Opens catalog.db with LiteDB itself (the store closed) and counts entries by state: the file must open
    /// cleanly, and no entry may be Damaged (listed as committed while its file is missing or short).
    /// </summary>
    public static IReadOnlyDictionary<string, int> CatalogStates(string dataDir)
    {
        using var db = new LiteDB.LiteDatabase(new LiteDB.ConnectionString
        {
            Filename = Path.Combine(dataDir, SealedBlobStore.CatalogFileName), Connection = LiteDB.ConnectionType.Direct,
        });
        return db.GetCollection("submissions").FindAll().GroupBy(d => d["state"].AsString).ToDictionary(g => g.Key, g => g.Count());
    }

    /// <summary>Opens every committed submission and compares it with the upload its message names.</summary>
    public IReadOnlyList<OpenedCheck> OpenAll(string dataDir, IReadOnlyDictionary<string, SeededUpload> uploadsByLabel, string scratch)
    {
        using var store = SealedBlobStore.Open(dataDir);
        var results = new List<OpenedCheck>();
        foreach (var record in store.ListCommitted())
        {
            using var blob = store.OpenSealed(record.Id);
            results.Add(Check(record.Id, blob, uploadsByLabel, scratch));
        }
        return results;
    }

    /// <summary>Opens one sealed blob and checks it against the upload its message names.</summary>
    public OpenedCheck Check(string id, Stream blob, IReadOnlyDictionary<string, SeededUpload> uploadsByLabel, string scratch)
    {
        var output = Path.Combine(scratch, "opened-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            OpenedSubmission opened;
            try { opened = SubmissionOpener.Open(blob, Key, output, id + ".sealed"); }
            catch (SealedFormatException e) { return new OpenedCheck(id, null, false, "refused: " + e.Message); }
            var label = SeededUpload.LabelOf(opened.Message);
            if (label is null || !uploadsByLabel.TryGetValue(label, out var upload))
                return new OpenedCheck(id, label, false, "message names no upload: " + opened.Message);
            if (opened.Reference != id) return new OpenedCheck(id, label, false, $"reference {opened.Reference} inside, {id} outside");
            if (opened.Message != upload.Message) return new OpenedCheck(id, label, false, "message differs");
            if (opened.Files is not [var file] || file.OriginalName != upload.FileName)
                return new OpenedCheck(id, label, false, $"files: {string.Join(", ", opened.Files.Select(f => f.OriginalName))}");
            var onDisk = Path.Combine(opened.Directory, file.SafeName);
            using var stream = File.OpenRead(onDisk);
            var sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
            var identical = stream.Length == upload.FileBytes && sha == upload.FileSha256();
            return new OpenedCheck(id, label, identical, identical ? null : $"content differs ({stream.Length} bytes, expected {upload.FileBytes})");
        }
        finally
        {
            try { Directory.Delete(output, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Files left in blobs/ with the given extension.</summary>
    public static string[] BlobFiles(string dataDir, string pattern) =>
        Directory.Exists(Path.Combine(dataDir, SealedBlobStore.BlobsDirectoryName))
            ? Directory.GetFiles(Path.Combine(dataDir, SealedBlobStore.BlobsDirectoryName), pattern)
            : [];

    public void Dispose() => Key.Dispose();
}
