using OnionDrop.Files;
namespace OnionDrop.Storage;

/// <summary>
/// One submission on its way in: blobs/ID.partial (created O_EXCL, 0600) until <see cref="CommitAsync"/>
/// makes it blobs/ID.sealed and a catalog entry. Dispose without commit removes every piece.
/// </summary>
internal sealed class SubmissionWriter : ISubmissionWriter
{
    private readonly SealedBlobStore _store;
    private readonly FileStream _file;
    private readonly BlobFileWriter _ciphertext;
    private bool _renamed, _committed, _disposed, _keepFile;

    public string Id { get; }
    public Stream Ciphertext => _ciphertext;

    public SubmissionWriter(SealedBlobStore store, string id)
    {
        _store = store;
        Id = id;
        // A spare file made earlier if there is one (its birth time is then not this upload's start), else a new one.
        var spare = store.TakeSpareFile(store.PartialPath(id));
        var options = new FileStreamOptions
        {
            Mode = spare ? FileMode.Open : FileMode.CreateNew, // O_CREAT | O_EXCL for a new one
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 0, // unused: BlobFileWriter sends every byte in DirectFileWriter's aligned blocks
        };
        if (!spare) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        _file = new FileStream(store.PartialPath(id), options);
        if (_file.Length != 0) _file.SetLength(0);
        _ciphertext = new BlobFileWriter(_file);
    }

    public async Task<SubmissionRecord> CommitAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed) throw new InvalidOperationException("already committed");
        await _ciphertext.FlushAsync(cancellationToken);   // writes, and hashes, the last block
        var (size, sha256) = _ciphertext.Finish();
        await _ciphertext.ReleaseBlocksAsync();
        await Task.Run(() => _file.Flush(flushToDisk: true), cancellationToken); // fsync: the bytes (and the length) are on disk
        await _file.DisposeAsync();

        File.Move(_store.PartialPath(Id), _store.SealedPath(Id), overwrite: false);
        _renamed = true;
        _store.SetArrivalDayTimes(_store.SealedPath(Id));
        _store.SetFolderDayTimes();
        FileSync.Fsync(_store.BlobsDir); // the name is on disk

        SubmissionRecord record;
        try { record = await _store.CommitEntryAsync(Id, size, sha256); } // only now is it visible
        catch (CommitOutcomeUnknownException)
        {
            _keepFile = true; // the entry may exist: it must not lack its file (the next sweep decides)
            throw;
        }
        _committed = true;
        return record;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        if (_committed || _keepFile) return;
        await _ciphertext.ReleaseBlocksAsync(); // waits for a block still on its way to disk
        // An upload refused or cut off gives its file back, emptied, to the spare files: otherwise a stream of
        // refused requests (which cost nothing) would use up the spares, and real uploads' files would again be
        // born at their start (docs/storage.md, "File times"). So does one whose commit was refused (a full disk),
        // under whichever name it had reached.
        var path = _renamed ? _store.SealedPath(Id) : _store.PartialPath(Id);
        var emptied = Empty(path);
        try { await _file.DisposeAsync(); }
        catch (IOException) { } // closing failed (disk full): the file goes anyway
        if (!emptied || !_store.ReturnSpareFile(path))
        {
            SealedBlobStore.TryDelete(path);
            _store.SetFolderDayTimes();
        }
    }

    /// <summary>Empties the file, through its handle while open, else by its name (the same inode either way).</summary>
    private bool Empty(string path)
    {
        try
        {
            if (_file.CanWrite) _file.SetLength(0); // false once closed
            else new FileStream(path, FileMode.Truncate, FileAccess.Write).Dispose();
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException) { return false; }
    }
}
