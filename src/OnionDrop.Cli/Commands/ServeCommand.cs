using System.CommandLine;

namespace OnionDrop.Cli.Commands;

public static class ServeCommand
{
    public static Command Create()
    {
        var command = new Command("serve", "(not implemented yet)");
        command.SetAction(_ => { Console.Error.WriteLine("oniondrop serve: not implemented yet"); return 70; });
        return command;
    }
}
